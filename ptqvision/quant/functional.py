"""Stateless quantization maths shared by every quantizer."""
from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Return round(x) in the forward pass and pass the gradient straight through."""
    return (x.round() - x).detach() + x


_BIT_SHIFTS: dict[torch.device, torch.Tensor] = {}


def bernoulli_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Return a bool tensor shaped like ``like`` whose elements are True with probability ``p``.

    For p = 0.5 (QDrop) on the CPU it unpacks random bytes, eight elements per random number: about 6x
    cheaper than comparing a uniform tensor, which dominated the reconstruction loop's cost there.
    """
    if p != 0.5 or like.device.type != "cpu":
        return torch.rand_like(like) < p
    n = like.numel()
    shifts = _BIT_SHIFTS.get(like.device)
    if shifts is None:
        shifts = _BIT_SHIFTS.setdefault(like.device, torch.arange(8, dtype=torch.uint8, device=like.device))
    bytes_ = torch.randint(0, 256, ((n + 7) // 8, 1), dtype=torch.uint8, device=like.device)
    return bytes_.bitwise_right_shift(shifts).bitwise_and_(1).view(-1)[:n].view(like.shape).bool()


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmax: int) -> torch.Tensor:
    """Return s·(clamp(round(x/s) + z, 0, qmax) − z), with a straight-through round.

    The gradient w.r.t. ``x`` is 1 inside the representable range and 0 where clamped; the gradient
    w.r.t. ``scale`` is the LSQ one, so a learnable step needs nothing else.
    """
    q = torch.clamp(round_ste(x / scale) + zero_point, 0, qmax)
    return (q - zero_point) * scale


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool = False,
                       eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, zero_point) that map [lo, hi] (widened to contain 0) onto 0..2^bits−1."""
    qmax = 2 ** bits - 1
    lo = torch.clamp(lo, max=0.0)
    hi = torch.clamp(hi, min=0.0)
    if symmetric:
        half = 2 ** (bits - 1)
        scale = torch.clamp(torch.maximum(-lo, hi) / max(half - 1, 1), min=eps)
        zero_point = torch.full_like(scale, float(half))
    else:
        scale = torch.clamp((hi - lo) / qmax, min=eps)
        zero_point = torch.clamp(torch.round(-lo / scale), 0, qmax)
    return scale, zero_point
