"""AdaRound: learned up/down rounding of weights (REFERENCE.md section 1).

W̃ = s·(clamp(floor(W/s) + h(V) + z, 0, 2^b − 1) − z), h(V) = clamp(sigmoid(V)·(ζ − γ) + γ, 0, 1).
V starts where h(V) equals the fractional part of W/s, so the soft weight starts at W (clamped to the
grid's range) and hard rounding 1[V ≥ 0] starts at round-to-nearest.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import QUANTIZERS
from .base import Quantizer
from .uniform import UniformQuantizer

ZETA, GAMMA = 1.1, -0.1


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """Return h(V) = clamp(sigmoid(V)·(ζ − γ) + γ, 0, 1)."""
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def beta_schedule(step: int, total: int, warmup: float = 0.2, start: float = 20.0, end: float = 2.0) -> float:
    """Return β at ``step``: ``start`` during the warm-up, then linear decay to ``end`` at ``total``."""
    begin = warmup * total
    if step < begin:
        return start
    rel = (step - begin) / max(total - begin, 1e-12)
    return end + (start - end) * max(0.0, 1.0 - rel)


@QUANTIZERS.register_module(name="adaround")
class AdaRoundQuantizer(Quantizer):
    """Weight quantizer with learnable rounding; takes scale and zero point from a calibrated
    :class:`UniformQuantizer` and the weight it rounds (fixed during reconstruction)."""

    kind = "adaround"

    def __init__(self, base: UniformQuantizer, weight: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        shape = [1] * weight.dim()
        if base.ch_axis is not None:
            shape[base.ch_axis] = -1
        scale = base.scale.detach().view(shape)
        with torch.no_grad():
            scaled = weight.detach() / scale
            floor = torch.floor(scaled)
            frac = (scaled - floor).clamp(1e-6, 1 - 1e-6)  # keeps V finite; h(V) = frac to 1e-6
            alpha = -torch.log((ZETA - GAMMA) / (frac - GAMMA) - 1)
        self.register_buffer("w_floor", floor)
        self.register_buffer("_scale", scale.clone())
        self.register_buffer("_zero_point", base.zero_point.detach().view(shape).clone())
        self.alpha = nn.Parameter(alpha)
        self.qmax = base.qmax
        self.hard = False

    def rounding(self) -> torch.Tensor:
        """Return h(V) (soft) or 1[V ≥ 0] (hard)."""
        if self.hard:
            return (self.alpha >= 0).to(self.alpha.dtype)
        return rectified_sigmoid(self.alpha)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # ``weight`` is ignored: rounding is learned for the weight given at construction.
        q = torch.clamp(self.w_floor + self.rounding() + self._zero_point, 0, self.qmax)
        return (q - self._zero_point) * self._scale

    def regularizer(self, beta: float) -> torch.Tensor:
        """Return Σ(1 − |2h(V) − 1|^β), which pushes every h(V) to 0 or 1."""
        return (1 - (2 * rectified_sigmoid(self.alpha) - 1).abs().pow(beta)).sum()

    def harden(self) -> None:
        """Fix the rounding to 1[V ≥ 0] (no gradient any more)."""
        self.hard = True
        self.alpha.requires_grad_(False)

    @property
    def is_calibrated(self) -> bool:
        return self.base.is_calibrated

    def eval_problems(self) -> list[str]:
        return super().eval_problems() + ([] if self.hard else ["AdaRound rounding is still soft"])

    def describe(self) -> dict:
        return self.base.describe()
