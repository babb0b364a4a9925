"""BatchNorm folding: an exact equivalence transform of conv → BN into one conv."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_bn_into_conv(conv: nn.Conv2d | nn.Linear, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold the inference-mode affine map of ``bn`` into ``conv`` in place (adds a bias if needed).

    W' = W·γ/σ per output channel, b' = (b − μ)·γ/σ + β, σ = sqrt(var + eps).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_mean)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    factor = gamma / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight
    conv.weight.copy_(w * factor.view(-1, *([1] * (w.dim() - 1))).to(w))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * factor + beta
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(w))
    else:
        conv.bias.copy_(new_bias)
