"""Units of reconstruction, derived from the model's structure (REFERENCE.md section 3).

A *block* is a module whose forward performs a residual add (of its input or a shortcut to its output):
the owner of the add in the traced graph's module stack. Every other instance of the same class is a
block too (MobileNetV2's first inverted residual of a stage has no skip, yet BRECQ reconstructs it as
one block). Everything in a block is reconstructed together; every quantized layer outside a block is
a *layer* unit. No class names are listed anywhere, so the same rule gives BRECQ's partition on ResNet,
RegNet, MobileNetV2, MnasNet and EfficientNet-Lite0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.fx as fx
from torch import nn

from ..errors import ConfigError
from ..nn import QUANT_LAYERS, is_residual_add
from ..quant import UniformQuantizer

PARTITIONS = ("block", "layer")


@dataclass
class Unit:
    """One unit: its name (a module path), kind ('block' or 'layer') and its graph nodes in order."""

    name: str
    kind: str
    nodes: list[fx.Node] = field(default_factory=list)

    def layers(self, gm: fx.GraphModule) -> list[str]:
        """Return the paths of the quantized layers in this unit."""
        return [n.target for n in self.nodes if n.op == "call_module"
                and isinstance(gm.get_submodule(n.target), QUANT_LAYERS)]


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
        is_layer = node.op == "call_module" and isinstance(gm.get_submodule(node.target), QUANT_LAYERS)
        if is_layer and not first_layer_seen:
            first_layer_seen = True
            if skip_first_layer and block is None:
                continue
        if block is not None:
            units.setdefault(block, Unit(block, "block")).nodes.append(node)
        elif is_layer:
            units[node.target] = Unit(node.target, "layer", [node])
    return [u for u in units.values() if u.layers(gm)]


def unit_quantizers(gm: fx.GraphModule, unit: Unit) -> tuple[list[nn.Module], list[UniformQuantizer]]:
    """Return (quantized layers, activation quantizers) of ``unit``: the layers' input/output
    quantizers and any standalone quantizer node (a block's output quantizer)."""
    layers, acts = [], []
    for node in unit.nodes:
        if node.op != "call_module":
            continue
        m = gm.get_submodule(node.target)
        if isinstance(m, QUANT_LAYERS):
            layers.append(m)
            acts += [q for q in (m.input_quantizer, m.output_quantizer) if q is not None]
        elif isinstance(m, UniformQuantizer):
            acts.append(m)
    return layers, acts


def partition_table(gm: fx.GraphModule, units: list[Unit]) -> str:
    """Return the partition as an aligned text table (index, kind, name, layers, activation quantizers)."""
    width = max([len(u.name) for u in units] + [4])
    lines = [f"{'#':>3}  {'kind':<5}  {'name':<{width}}  layers  act_q"]
    for i, u in enumerate(units):
        layers, acts = unit_quantizers(gm, u)
        lines.append(f"{i:>3}  {u.kind:<5}  {u.name:<{width}}  {len(layers):>6}  {len(acts):>5}")
    kinds = [u.kind for u in units]
    lines.append(f"{len(units)} units: {kinds.count('block')} blocks, {kinds.count('layer')} layers")
    return "\n".join(lines)
