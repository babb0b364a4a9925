"""Helpers of the adapters that quantize by module swapping (timm transformers, SAM): quantizers from placement
rules, class swaps that keep a module's parameters and helpers, full-precision steps of a schedule, and the
layer-wise split of a unit into its ops."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..nn import QuantConfig
from ..nn.ops import QuantOp
from ..nn.twin import act_quantizer
from ..quant import UniformQuantizer
from ..registry import QUANTIZERS, lookup
from .schedule import Item, Unit

# quant.softmax -> (registered quantizer kind, its arguments)
SOFTMAX_QUANTIZERS = {"uniform": ("uniform", {}), "log2": ("log2", {"mode": "log2"}),
                      "log_sqrt2": ("log2", {"mode": "log_sqrt2"}), "agq": ("log2", {"mode": "agq"})}


def rule_quantizer(cfg: QuantConfig, bits_key: str, granularity: str, heads: int = 1) -> nn.Module:
    """Return the activation quantizer a placement rule ``(bits_key, granularity)`` asks for: granularity
    'tensor', 'attn' (per head when ``quant.attn_granularity='head'``) or 'softmax' (``quant.softmax``'s kind)."""
    bits = getattr(cfg, bits_key)
    if granularity == "softmax":  # the kind by its registered name: a user's own quantizer plugs in the same way
        kind, kwargs = SOFTMAX_QUANTIZERS[cfg.softmax or "uniform"]  # None: no method preset asked for another
        if kind == "uniform":  # A lies in [0, 1]: asymmetric whatever quant.a_symmetric says
            return UniformQuantizer(bits, symmetric=False, observer=cfg.a_observer, observer_kwargs={"p": cfg.lp_p})
        return lookup(QUANTIZERS, kind, "quantizer")(bits, **kwargs, p=cfg.lp_p)
    return act_quantizer(cfg, bits, heads if granularity == "attn" and cfg.attn_granularity == "head" else None)


_QUANT_CLASSES: dict[tuple[type, type], type] = {}


def quant_class(cls: type, mixin: type) -> type:
    """Return the class ``mixin + cls`` (made once per pair), so a swapped module keeps every attribute,
    buffer and helper method of ``cls`` and only what the mixin defines (its forward) changes."""
    key = (cls, mixin)
    if key not in _QUANT_CLASSES:
        _QUANT_CLASSES[key] = type(f"Quant{cls.__name__}", (mixin, cls), {})
    return _QUANT_CLASSES[key]


def set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule of ``root`` at ``path`` by ``module``."""
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class Step(nn.Module):
    """A full-precision step of a schedule that calls into the model without owning it (so the model's
    quantized parts are never counted as this step's)."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, *args: torch.Tensor):
        return self.fn(*args)

    def extra_repr(self) -> str:
        return self.name


def split_layers(item: Item, paths: dict[int, str]) -> None:
    """Turn a unit item into AdaRound's layer units: every op with weights inside it becomes an inner layer
    unit (its input and output captured as the item runs); an item with one such op is itself a layer unit."""
    ops = [m for m in item.module.modules() if isinstance(m, QuantOp) and m.weights()]
    if len(ops) > 1:
        unit = item.unit
        item.unit = None
        item.inner = [Unit(paths[id(op)], "layer", members=[op], loss_dim=unit.loss_dim) for op in ops]
    else:
        item.unit.kind = "layer"
