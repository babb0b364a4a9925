"""Trap 7 as a check: find compute ops that run outside every quantized op.

A twin that swaps only some modules can leave matmuls, softmaxes or a fused attention in full precision
while still calling itself "W4A4". This probe runs the model once and records every call of a
weight-or-attention op (linear, conv, matmul, softmax, scaled-dot-product attention, einsum, bmm) that
happens while no quantized op is running, with the module it ran in. Modules an adapter keeps in full
precision on purpose (and lists as such) cover the ops inside them the same way.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .ops import QuantOp

WATCHED: dict[Callable, str] = {
    F.linear: "linear", F.conv1d: "conv1d", F.conv2d: "conv2d", F.conv3d: "conv3d",
    F.conv_transpose1d: "conv_transpose1d", F.conv_transpose2d: "conv_transpose2d",
    torch.conv2d: "conv2d", F.scaled_dot_product_attention: "scaled_dot_product_attention",
    torch.matmul: "matmul", torch.Tensor.__matmul__: "matmul", torch.Tensor.matmul: "matmul",
    torch.bmm: "bmm", torch.baddbmm: "baddbmm", torch.einsum: "einsum",
    torch.softmax: "softmax", torch.Tensor.softmax: "softmax", F.softmax: "softmax",
}


class _Recorder(TorchFunctionMode):
    def __init__(self, stack: list[str], depth: list[int], found: list[str]) -> None:
        super().__init__()
        self.stack, self.depth, self.found = stack, depth, found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = WATCHED.get(func)
        if name is not None and self.depth[0] == 0:
            where = self.stack[-1] if self.stack else "<model>"
            entry = f"{name} in {where or '<model>'}"
            if entry not in self.found:
                self.found.append(entry)
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def uncovered_ops(model: nn.Module, run: Callable[[nn.Module], Any],
                  full_precision: Iterable[nn.Module] = ()) -> list[str]:
    """Return 'op in module' for every watched op that ``run(model)`` executes outside a quantized op and
    outside the modules in ``full_precision`` (kept in full precision on purpose)."""
    stack: list[str] = []
    depth = [0]
    found: list[str] = []
    names = {id(m): n for n, m in model.named_modules()}
    covering = {id(m) for m in full_precision}
    handles = []
    for m in model.modules():
        def pre(mod, _args, _name=names[id(m)]):
            stack.append(_name)
            if isinstance(mod, QuantOp) or id(mod) in covering:
                depth[0] += 1

        def post(mod, _args, _out):
            stack.pop()
            if isinstance(mod, QuantOp) or id(mod) in covering:
                depth[0] -= 1

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with _Recorder(stack, depth, found):
            run(model)
    finally:
        for h in handles:
            h.remove()
    return found
