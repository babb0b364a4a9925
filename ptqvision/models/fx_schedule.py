"""The schedule of a traced (torch.fx) model: units from its structure, items cut from its graph.

A *block* is a module whose forward performs a residual add (of its input or a shortcut to its output):
the owner of the add in the traced graph's module stack. Every other instance of the same class is a
block too (MobileNetV2's first inverted residual of a stage has no skip, yet BRECQ reconstructs it as
one block). Everything in a block is reconstructed together; every quantized layer outside a block is
a *layer* unit. No class names are listed anywhere, so the same rule gives BRECQ's partition on ResNet,
RegNet, MobileNetV2, MnasNet and EfficientNet-Lite0.

The graph is then cut into one item per unit and one per node outside the units, in an order where
every input is ready before it is needed (see :mod:`.schedule`). A size computed outside the units
(``x.shape[-2:]`` for an upsampling to the input's size) is no item: every item that reads it recomputes it
from its tensor, so the engine's streams only ever hold tensors.
"""
from __future__ import annotations

from typing import Sequence

import torch.fx as fx

from ..errors import ConfigError, PTQError
from ..nn import is_residual_add
from ..nn.twin import is_shape_node
from ..nn.ops import QuantOp
from .schedule import Item, Schedule, Unit

PARTITIONS = ("block", "layer")


def unit_layers(gm: fx.GraphModule, unit: Unit) -> list[str]:
    """Return the paths of the quantized layers in a traced unit."""
    return [n.target for n in unit.nodes if n.op == "call_module" and _has_weights(gm.get_submodule(n.target))]


def _has_weights(m) -> bool:
    return isinstance(m, QuantOp) and bool(m.weights())


def module_stack(node: fx.Node) -> list[tuple[str, type]]:
    """Return (path, class) of the modules whose forward was running when ``node`` was traced, outermost first."""
    return [(path, cls) for path, cls in node.meta.get("nn_module_stack", {}).values()]


def module_paths(node: fx.Node) -> list[str]:
    """Return the paths of :func:`module_stack`."""
    return [path for path, _ in module_stack(node)]


def find_blocks(gm: fx.GraphModule) -> list[str]:
    """Return the paths of the blocks (outermost ones only), in network order: every module whose class
    owns a residual add somewhere in the network."""
    residual_classes = set()
    for node in gm.graph.nodes:
        if is_residual_add(node):
            stack = module_stack(node)
            if stack and stack[-1][0]:  # an add in the root's own forward makes no block
                residual_classes.add(stack[-1][1])
    blocks: list[str] = []
    for node in gm.graph.nodes:
        for path, cls in module_stack(node):
            if cls in residual_classes and path:
                if path not in blocks:
                    blocks.append(path)
                break  # outermost only
    return blocks


def partition(gm: fx.GraphModule, mode: str = "block", skip_first_layer: bool = False) -> list[Unit]:
    """Return the units of ``gm`` in network order.

    ``mode='block'``: residual modules are blocks, other quantized layers are layer units (BRECQ/QDrop).
    ``mode='layer'``: every quantized layer is a unit (AdaRound). ``skip_first_layer`` leaves the first
    layer out (BRECQ does not reconstruct the 8-bit stem). Nodes outside units (pooling, flatten, adds
    between layer units) are not part of any unit.
    """
    if mode not in PARTITIONS:
        raise ConfigError(f"recon.partition must be one of {PARTITIONS}, got {mode!r}")
    blocks = find_blocks(gm) if mode == "block" else []
    units: dict[str, Unit] = {}
    first_layer_seen = False
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        stack = module_paths(node)
        block = next((p for p in stack if p in blocks), None)
        is_layer = node.op == "call_module" and _has_weights(gm.get_submodule(node.target))
        if is_layer and not first_layer_seen:
            first_layer_seen = True
            if skip_first_layer and block is None:
                continue
        if block is not None:
            units.setdefault(block, Unit(block, "block")).nodes.append(node)
        elif is_layer:
            units[node.target] = Unit(node.target, "layer", [node])
    out = [u for u in units.values() if unit_layers(gm, u)]
    for u in out:  # network order of the unit's modules (fixes the order of its quantizers everywhere)
        u.members = [gm.get_submodule(n.target) for n in u.nodes if n.op == "call_module"]
    return out


def _extract(gm: fx.GraphModule, nodes: Sequence[fx.Node], used_later: set[fx.Node]) -> Item:
    members = set(nodes)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    inputs: list[fx.Node] = []

    def lookup(n: fx.Node) -> fx.Node:
        if n not in env:
            if n.op == "get_attr":  # parameters and buffers used functionally travel with the item
                env[n] = graph.node_copy(n, lambda m: env[m])
            elif is_shape_node(n):  # a size is recomputed here from its tensor, never cached as a value
                env[n] = graph.node_copy(n, lookup)
            else:
                inputs.append(n)
                env[n] = graph.placeholder(f"in_{len(inputs) - 1}_{n.name}")
        return env[n]

    for node in nodes:
        for dep in node.all_input_nodes:
            if dep not in members:
                lookup(dep)
        env[node] = graph.node_copy(node, lambda m: env[m])
    outputs = [n for n in nodes if n in used_later]
    graph.output(env[outputs[0]] if len(outputs) == 1 else tuple(env[n] for n in outputs))
    return Item(fx.GraphModule(gm, graph, "item"), inputs, outputs)


def extract_module(gm: fx.GraphModule, path: str) -> Item:
    """Return the nodes traced inside module ``path`` of ``gm`` as one item (raise PTQError if there are none)."""
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output") and path in module_paths(n)]
    if not nodes:
        raise PTQError(f"module {path!r} does not appear in the traced graph")
    members = set(nodes)
    used_later = {n for n in nodes if any(u not in members for u in n.users)}
    return _extract(gm, nodes, used_later)


def build_schedule(gm: fx.GraphModule, units: Sequence[Unit]) -> Schedule:
    """Return the schedule of ``gm``: items in execution order, the graph input node, the graph output value.

    Raises PTQError when a unit cannot run as one piece (it needs a value that is computed from its own
    output outside it), or when the model has more than one input.
    """
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise PTQError(f"reconstruction needs a model with one input, this one has {len(placeholders)}")
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    if not isinstance(out_node.args[0], fx.Node):
        raise PTQError("reconstruction needs a model that returns one tensor")
    final = out_node.args[0]
    owner: dict[fx.Node, int] = {}
    for i, unit in enumerate(units):
        for n in unit.nodes:
            owner[n] = i
    groups: list[list[fx.Node]] = []
    group_unit: list[Unit | None] = []
    seen_units: dict[int, int] = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output") or (node.op == "get_attr" and node not in owner):
            continue
        if node not in owner and is_shape_node(node):  # recomputed by each item that reads it (see _extract)
            continue
        if node in owner:
            u = owner[node]
            if u not in seen_units:
                seen_units[u] = len(groups)
                groups.append([])
                group_unit.append(units[u])
            groups[seen_units[u]].append(node)
        else:
            groups.append([node])
            group_unit.append(None)
    group_of = {n: g for g, nodes in enumerate(groups) for n in nodes}

    def sources(d: fx.Node) -> list[fx.Node]:
        """Return the values a node stands for: itself, or for a size computed outside the groups, its tensors."""
        if d in group_of or not is_shape_node(d):
            return [d]
        return [s for x in d.all_input_nodes for s in sources(x)]

    # Order groups so that each runs after everything it reads (a unit's nodes may interleave with others).
    order: list[int] = []
    done: set[int] = set()
    pending = list(range(len(groups)))
    while pending:
        for g in pending:
            deps = {group_of[s] for n in groups[g] for d in n.all_input_nodes for s in sources(d)
                    if s in group_of} - {g}
            if deps <= done:
                order.append(g)
                done.add(g)
                pending.remove(g)
                break
        else:
            names = [group_unit[g].name for g in pending if group_unit[g] is not None]
            raise PTQError(f"unit(s) {names[:3]} cannot be run as one piece: a value they read depends on "
                           "their own output")
    items = []
    for g in order:
        nodes = groups[g]
        members = set(nodes)
        used_later = {n for n in nodes if n is final or any(u not in members for u in n.users)}
        item = _extract(gm, nodes, used_later)
        item.unit = group_unit[g]
        if item.unit is not None and len(item.outputs) != 1:
            raise PTQError(f"unit {item.unit.name} exports {len(item.outputs)} values; a unit must have one output")
        items.append(item)
    return Schedule(items, [placeholders[0]], final)


