"""Uniform affine fake quantizer with a straight-through estimator and a drop probability."""
from __future__ import annotations

import math

import torch

from ..errors import InvariantError

from ..registry import QUANTIZERS
from .base import MAX_BITS, MIN_BITS, SteppedQuantizer, check_bits  # noqa: F401  (re-exported)
from .functional import drop_select, fake_quantize_inplace, fake_quantize_lsq, keep_mask
from .observers import build_observer

@QUANTIZERS.register_module(name="uniform")
class UniformQuantizer(SteppedQuantizer):
    """x̂ = s·(clamp(round(x/s) + z, 0, 2^b − 1) − z), per tensor, per channel or per head.

    States: *observing* (pass-through while an observer records ranges), *calibrated* (quantizes),
    *disabled* (identity). ``drop_prob`` < 1 quantizes each element only with that probability
    (QDrop); evaluation requires it to be exactly 1. ``scale`` is a parameter that is frozen by
    default, so learning the step (LSQ) only needs ``scale.requires_grad_(True)``.
    Per head is per channel along the head axis of a (B, heads, tokens, dim) tensor (``per_head=True``).
    """

    kind = "uniform"

    def __init__(self, bits: int = 8, num_channels: int = 1, ch_axis: int | None = None,
                 symmetric: bool = False, observer: str = "lp", observer_kwargs: dict | None = None,
                 per_head: bool = False) -> None:
        super().__init__(bits, num_channels)
        if ch_axis is None and num_channels != 1:
            raise ValueError("a per-tensor quantizer has exactly one channel")
        if per_head and ch_axis is None:
            raise ValueError("a per-head quantizer needs the head axis as ch_axis")
        self.ch_axis = ch_axis
        self.per_head = per_head
        self.symmetric = symmetric
        self.observer_name = observer
        self.observer_kwargs = dict(observer_kwargs or {})
        build_observer(observer, ch_axis)  # fail early on a bad name
        self.register_buffer("zero_point", torch.zeros(num_channels))
        self.lsq_grad_scale = True  # LSQ: scale the step's gradient by 1/sqrt(N·Q_max) while it is learned

    @property
    def granularity(self) -> str:
        return "tensor" if self.ch_axis is None else ("head" if self.per_head else "channel")

    @torch.no_grad()
    def set_qparams(self, scale: torch.Tensor, zero_point: torch.Tensor) -> None:
        """Set (scale, zero point) directly (e.g. from an equivalence transform) and mark calibrated."""
        self.scale.copy_(scale.reshape(self.scale.shape).to(self.scale))
        self.zero_point.copy_(zero_point.reshape(self.zero_point.shape).to(self.zero_point))
        self._set_calibrated(True)

    # --- calibration -------------------------------------------------------------------------
    def start_observing(self, **observer_kwargs: object) -> None:
        """Enter pass-through mode with a fresh observer (``observer_kwargs`` override the configured ones)."""
        self.observer = build_observer(self.observer_name, self.ch_axis,
                                       **{**self.observer_kwargs, **observer_kwargs})

    def finish_observing(self) -> None:
        """Turn what the observer saw into (scale, zero point) and leave observing mode."""
        if self.observer is None:
            raise RuntimeError("finish_observing() without start_observing()")
        observer, self.observer = self.observer, None
        if observer.lo is None:
            raise InvariantError("a quantizer saw no data during calibration (is it on a dead branch?)")
        scale, zero_point = observer.qparams(self.bits, self.symmetric)
        with torch.no_grad():
            self.scale.copy_(scale.to(self.scale))
            self.zero_point.copy_(zero_point.to(self.zero_point))
        self._set_calibrated(True)

    @torch.no_grad()
    def calibrate_from(self, x: torch.Tensor) -> None:
        """Set the parameters from one tensor (a weight), searching over every one of its values."""
        self.start_observing(max_samples=None)
        self.observer.update(x)
        self.finish_observing()

    # --- forward -----------------------------------------------------------------------------
    def _broadcast(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.ch_axis is None:
            return t
        shape = [1] * x.dim()
        shape[self.ch_axis] = -1
        return t.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.observer is not None:
            self.observer.update(x)
            return x
        if not self._ready:
            raise InvariantError("quantizer used before calibration")
        learnable = torch.is_grad_enabled() and (x.requires_grad or self.scale.requires_grad)
        if self.ch_axis is None and x.device.type == "cpu":  # plain element-wise passes (see fake_quantize_lsq)
            zero_point = float(self.zero_point)
            if learnable:
                keep = keep_mask(x, self.drop_prob) if self.drop_prob < 1.0 else None
                return fake_quantize_lsq(x, self.scale, zero_point, self.qmax, self._grad_factor(x), keep)
            xq = fake_quantize_inplace(x, self.scale.detach(), zero_point, self.qmax)
        elif learnable:
            xq = self._learnable(x)
        else:
            xq = self._fused_inference(x)
        if self.drop_prob < 1.0:
            xq = drop_select(x, xq, self.drop_prob)
        return xq

    def _grad_factor(self, x: torch.Tensor) -> float:
        """LSQ's gradient scale 1/sqrt(N·Q_max) while the step is learned (N: elements per sample), else 1."""
        if self.scale.requires_grad and self.lsq_grad_scale:
            per_sample = x[0].numel() if x.dim() > 1 else x.numel()
            return 1.0 / math.sqrt(per_sample * self.qmax)
        return 1.0

    def _learnable(self, x: torch.Tensor) -> torch.Tensor:
        """fake_quantize with the LSQ gradient for the step, through torch's fused kernels (one pass forward,
        one backward: several times faster than the op-by-op graph on a GPU)."""
        factor = self._grad_factor(x)
        if self.ch_axis is None:
            return torch._fake_quantize_learnable_per_tensor_affine(x, self.scale, self.zero_point, 0, self.qmax,
                                                                    factor)
        return torch._fake_quantize_learnable_per_channel_affine(x, self.scale, self.zero_point, self.ch_axis, 0,
                                                                 self.qmax, factor)

    def _fused_inference(self, x: torch.Tensor) -> torch.Tensor:
        """Same maths as fake_quantize through torch's fused kernel (no autograd needed here)."""
        zp = self.zero_point.to(torch.int32)
        if self.ch_axis is None:
            return torch.fake_quantize_per_tensor_affine(x, self.scale.detach(), zp, 0, self.qmax)
        return torch.fake_quantize_per_channel_affine(x, self.scale.detach(), zp, self.ch_axis, 0, self.qmax)

    def describe(self) -> dict:
        """Return the placement record of this quantizer."""
        return {"type": self.kind, "bits": self.bits, "granularity": self.granularity,
                "symmetric": self.symmetric, "observer": self.observer_name}

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, granularity={self.granularity}, symmetric={self.symmetric}, "
                f"observer={self.observer_name}")
