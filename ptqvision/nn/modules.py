"""Quantized counterparts of the layers that hold weights.

A quantized layer owns a weight quantizer and, where the placement rules put them, an input
quantizer, a fused activation function and an output quantizer: input → Q_in → op(Q_w(W)) → act → Q_out.
CNNs use the output side (BRECQ/QDrop protocol); transformer linears use the input side (PTQ4SAM).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..quant import UniformQuantizer
from ..quant.base import Quantizer
from .ops import QuantOp


def same_pad_amounts(size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Return (before, after) TensorFlow "SAME" padding for one spatial dimension of ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def tf_same_pad(x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Return x zero-padded as TensorFlow's "SAME" convolution does (extra pixel right/bottom)."""
    (top, bottom), (left, right) = (same_pad_amounts(size, k, s, d)
                                    for size, k, s, d in zip(x.shape[-2:], kernel_size, stride, dilation))
    return F.pad(x, [left, right, top, bottom]) if top or bottom or left or right else x


class QuantLayerMixin(QuantOp):
    """Shared state and helpers of QuantConv2d and QuantLinear: a weight quantizer and optional input and
    output quantizers (an activation fused into the layer runs before the output quantizer)."""

    weight_quantizer: UniformQuantizer
    input_quantizer: Optional[UniformQuantizer]
    output_quantizer: Optional[UniformQuantizer]
    act: Optional[nn.Module]

    def _init_quant(self, weight_quantizer: UniformQuantizer) -> None:
        self.weight_quantizer = weight_quantizer
        self.register_module("input_quantizer", None)
        self.register_module("output_quantizer", None)
        self.register_module("act", None)
        self.quantize_weight = True

    def quantizers(self) -> dict[str, Quantizer]:
        out = {"weight": self.weight_quantizer, "input": self.input_quantizer, "output": self.output_quantizer}
        return {k: v for k, v in out.items() if v is not None}

    def weights(self) -> dict[str, nn.Parameter]:
        return {"weight": self.weight}

    @torch.no_grad()
    def _copy_params_from(self, src: nn.Module) -> None:
        self.weight.copy_(src.weight)
        if src.bias is not None:
            self.bias.copy_(src.bias)

    def quantized_weight(self) -> torch.Tensor:
        """Return the weight as the quantized model sees it."""
        return self.weight_quantizer(self.weight) if self.quantize_weight else self.weight

    def _finish(self, out: torch.Tensor) -> torch.Tensor:
        if self.act is not None:
            out = self.act(out)
        if self.output_quantizer is not None:
            out = self.output_quantizer(out)
        return out

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_quantizer(x) if self.input_quantizer is not None else x


class QuantConv2d(QuantLayerMixin, nn.Conv2d):
    """nn.Conv2d with fake-quantized weight and optional input/output quantizers."""

    def __init__(self, *args, weight_quantizer: UniformQuantizer, tf_same_padding: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant(weight_quantizer)
        self.tf_same_padding = tf_same_padding

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_quantizer: UniformQuantizer,
                   tf_same_padding: bool = False) -> "QuantConv2d":
        """Return a quantized copy of ``conv`` sharing no storage with it."""
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                padding=0 if tf_same_padding else conv.padding, dilation=conv.dilation, groups=conv.groups,
                bias=conv.bias is not None, padding_mode=conv.padding_mode,
                weight_quantizer=weight_quantizer, tf_same_padding=tf_same_padding,
                device=conv.weight.device, dtype=conv.weight.dtype)
        q._copy_params_from(conv)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._start(x)
        if self.tf_same_padding:
            x = tf_same_pad(x, self.kernel_size, self.stride, self.dilation)
        return self._finish(self._conv_forward(x, self.quantized_weight(), self.bias))


class QuantLinear(QuantLayerMixin, nn.Linear):
    """nn.Linear with fake-quantized weight and optional input/output quantizers."""

    def __init__(self, *args, weight_quantizer: UniformQuantizer, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant(weight_quantizer)

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_quantizer: UniformQuantizer) -> "QuantLinear":
        """Return a quantized copy of ``linear`` sharing no storage with it."""
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                weight_quantizer=weight_quantizer, device=linear.weight.device, dtype=linear.weight.dtype)
        q._copy_params_from(linear)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(F.linear(self._start(x), self.quantized_weight(), self.bias))


QUANT_LAYERS = (QuantConv2d, QuantLinear)
