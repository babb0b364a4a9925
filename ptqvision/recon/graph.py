"""Cut the traced quantized model into a schedule of small graph modules: one per unit and one per
node outside the units, in an order where every input is ready before it is needed.

Running the schedule item by item over cached tensors reproduces the model's forward, so unit inputs
and targets are produced incrementally (one pass of the network in all, not one per unit), and the
items after a unit form the generic "rest of the network" (its tail) for losses that need logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.fx as fx

from ..errors import PTQError
from .partition import Unit, module_paths


@dataclass
class Item:
    """A piece of the schedule: a graph module with its external inputs and the values it exports."""

    module: fx.GraphModule
    inputs: list[fx.Node]   # values of the full graph it reads, in placeholder order
    outputs: list[fx.Node]  # values of the full graph it produces that are read later (or are the output)
    unit: Unit | None = None

    def __call__(self, *args: Any) -> list[Any]:
        out = self.module(*args)
        return list(out) if len(self.outputs) != 1 else [out]


def _extract(gm: fx.GraphModule, nodes: Sequence[fx.Node], used_later: set[fx.Node]) -> Item:
    members = set(nodes)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    inputs: list[fx.Node] = []

    def lookup(n: fx.Node) -> fx.Node:
        if n not in env:
            if n.op == "get_attr":  # parameters and buffers used functionally travel with the item
                env[n] = graph.node_copy(n, lambda m: env[m])
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


def build_schedule(gm: fx.GraphModule, units: Sequence[Unit]) -> tuple[list[Item], fx.Node, fx.Node]:
    """Return (items in execution order, the graph input node, the graph output value).

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
    # Order groups so that each runs after everything it reads (a unit's nodes may interleave with others).
    order: list[int] = []
    done: set[int] = set()
    pending = list(range(len(groups)))
    while pending:
        for g in pending:
            deps = {group_of[d] for n in groups[g] for d in n.all_input_nodes if d in group_of} - {g}
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
    return items, placeholders[0], final


def last_uses(items: Sequence[Item], final: fx.Node) -> dict[fx.Node, int]:
    """Return, for every value read by an item, the index of the last item that reads it."""
    last: dict[fx.Node, int] = {}
    for i, item in enumerate(items):
        for n in item.inputs:
            last[n] = i
    last[final] = len(items)
    return last


def run_items(items: Sequence[Item], env: dict[fx.Node, Any], final: fx.Node) -> torch.Tensor:
    """Run ``items`` in order on the values in ``env`` (one batch) and return the graph output."""
    env = dict(env)
    for item in items:
        for node, value in zip(item.outputs, item(*[env[n] for n in item.inputs])):
            env[node] = value
    return env[final]
