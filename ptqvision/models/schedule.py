"""Units and schedules: how the reconstruction engine sees any model, whatever its family.

An adapter cuts its quantized twin into a :class:`Schedule`: items in execution order, each a module
with named inputs and outputs (keys of any hashable kind: fx nodes for traced CNNs, strings for
module-swapped transformers). Items that are units are reconstructed; the others (position embeddings,
pooling, norms between units) are run as they are. Running the items in order over cached values
reproduces the model's forward, so unit inputs and targets are produced incrementally (one pass of the
network per stage), a unit may take any number of inputs of any shapes, and the items after a unit are
the generic rest of the network (its tail) for losses that need the task's output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import torch
from torch import nn

from ..nn.ops import QuantOp
from ..quant import AdaRoundQuantizer
from ..quant.base import Quantizer

UNIT_KINDS = ("block", "sub_block", "layer")


@dataclass
class Unit:
    """One unit of reconstruction: a name (a module path), a kind ('block', 'sub_block' or 'layer') and,
    optionally, its member modules in network order (default: the item's modules in module order)."""

    name: str
    kind: str
    nodes: list = field(default_factory=list)         # traced graphs: the unit's nodes
    members: list[nn.Module] | None = None
    loss_dim: int = 1                                 # the channel dim the reconstruction loss sums over


@dataclass
class Item:
    """A piece of the schedule: a module, the keys of the values it reads (in argument order) and of the
    values it produces (in output order), and the unit it is, if any."""

    module: nn.Module
    inputs: list[Hashable]
    outputs: list[Hashable]
    unit: Unit | None = None
    # layer units inside a piece that is run whole (an eager model's block with layer-wise reconstruction):
    # each is one op (``members[0]``) whose input and output the engine captures as the piece runs
    inner: list[Unit] = field(default_factory=list)

    def __call__(self, *args: Any) -> list[Any]:
        out = self.module(*args)
        return list(out) if len(self.outputs) != 1 else [out]


@dataclass
class Schedule:
    """Items in execution order, the keys of the model's inputs and the key of its output."""

    items: list[Item]
    inputs: list[Hashable]
    output: Hashable
    # index of the first item from which the engine may recompute values per step instead of caching them for
    # every calibration sample (SAM's decoder: a few per-image values in, per-prompt values out); None: never
    recompute_from: int | None = None

    @property
    def units(self) -> list[Unit]:
        return [u for it in self.items for u in ([it.unit] if it.unit is not None else it.inner)]


def last_uses(items: Sequence[Item], final: Hashable) -> dict[Hashable, int]:
    """Return, for every value read by an item, the index of the last item that reads it."""
    last: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        for n in item.inputs:
            last[n] = i
    last[final] = len(items)
    return last


def run_items(items: Sequence[Item], env: dict[Hashable, Any], final: Hashable) -> torch.Tensor:
    """Run ``items`` in order on the values in ``env`` (one batch) and return the value ``final``."""
    env = dict(env)
    for item in items:
        for node, value in zip(item.outputs, item(*[env[n] for n in item.inputs])):
            env[node] = value
    return env[final]


def unit_quantizers(item: Item) -> tuple[list[QuantOp], list[Quantizer]]:
    """Return (ops with weights, activation quantizers) of a unit item, in network order: every quantizer
    of every quantized op inside it, whatever the op, and any standalone quantizer (a block's output)."""
    members = item.unit.members if item.unit is not None and item.unit.members is not None \
        else list(item.module.modules())
    weight_ids = {id(op.quantizers()[r]) for op in members if isinstance(op, QuantOp)
                  for r in op.weights() if r in op.quantizers()}
    layers: list[QuantOp] = []
    acts: list[Quantizer] = []
    seen: set[int] = set()

    def add(q: Quantizer) -> None:
        if id(q) not in seen and id(q) not in weight_ids and not isinstance(q, AdaRoundQuantizer):
            seen.add(id(q))
            acts.append(q)

    for m in members:
        if isinstance(m, QuantOp):
            if m.weights():
                layers.append(m)
            for q in m.quantizers().values():
                add(q)
        elif isinstance(m, Quantizer):
            add(m)
    return layers, acts


def inner_item(unit: Unit) -> Item:
    """Return the item of an inner layer unit: its op, reading and producing captured values."""
    return Item(unit.members[0], [("input", unit.name)], [("output", unit.name)], unit)


def unit_items(schedule: Schedule) -> list[Item]:
    """Return one item per unit, in order (inner layer units as their own op)."""
    return [u for it in schedule.items for u in ([it] if it.unit is not None else [inner_item(x) for x in it.inner])]


def partition_table(schedule: Schedule) -> str:
    """Return the units as an aligned text table (index, kind, name, ops with weights, activation quantizers)."""
    items = unit_items(schedule)
    width = max([len(it.unit.name) for it in items] + [4])
    lines = [f"{'#':>3}  {'kind':<9}  {'name':<{width}}  layers  act_q"]
    for i, it in enumerate(items):
        layers, acts = unit_quantizers(it)
        lines.append(f"{i:>3}  {it.unit.kind:<9}  {it.unit.name:<{width}}  {len(layers):>6}  {len(acts):>5}")
    kinds = [it.unit.kind for it in items]
    counts = ", ".join(f"{kinds.count(k)} {k.replace('_', '-')}s" for k in UNIT_KINDS if kinds.count(k))
    lines.append(f"{len(items)} units: {counts}")
    return "\n".join(lines)
