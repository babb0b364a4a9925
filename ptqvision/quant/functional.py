"""Stateless quantization maths shared by every quantizer."""
from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Return round(x) in the forward pass and pass the gradient straight through."""
    return (x.round() - x).detach() + x


_BIT_TABLES: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Return a 0/1 tensor of ``like``'s shape and dtype whose elements are 1 with probability ``p``.

    A float mask, not a bool one: on the CPU, selecting with ``torch.lerp(x, xq, mask)`` costs about a
    pass like ``x * y``, while ``torch.where`` with a bool mask (and every bool-float op) costs about 10x
    that. For p = 0.5 on the CPU it expands random bytes through a 256x8 table of bits, eight elements per
    random number (the per-element generators cost more than the whole quantizer otherwise).
    """
    if p != 0.5 or like.device.type != "cpu":
        return (torch.rand_like(like) < p).to(like.dtype)
    key = (like.device, like.dtype)
    table = _BIT_TABLES.get(key)
    if table is None:
        codes = torch.arange(256, device=like.device).unsqueeze(1)
        bits = torch.arange(8, device=like.device)
        table = _BIT_TABLES.setdefault(key, ((codes >> bits) & 1).to(like.dtype))
    n = like.numel()
    bytes_ = torch.randint(0, 256, ((n + 7) // 8,), device=like.device)
    return table.index_select(0, bytes_).view(-1)[:n].view(like.shape)


def drop_select(x: torch.Tensor, xq: torch.Tensor, p: float) -> torch.Tensor:
    """QDrop: each element of ``xq`` with probability ``p``, of ``x`` otherwise (differentiable in both)."""
    return torch.lerp(x, xq, keep_mask(xq, p))  # weights exactly 0 or 1: an exact selection


class _FakeQuantPerTensor(torch.autograd.Function):
    """Per-tensor fake quantization with the straight-through x gradient and the LSQ step gradient, and
    optionally QDrop's element-wise drop, in one autograd node of plain element-wise passes.

    The same maths as ``torch._fake_quantize_learnable_per_tensor_affine`` (x·(1/s), round half to even,
    clamp) followed by the drop; on the CPU it is several times faster than those kernels (and
    ``torch.where``), whose per-element loops are not vectorised there. The backward is one product and
    one dot product: the two factors it needs are formed in the forward pass.
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point: float, qmax: int, grad_factor: float, keep):
        t = x * scale.reciprocal()
        codes = torch.round(t)
        if zero_point:
            codes.add_(zero_point)
        clamped = codes.clamp(0, qmax)
        inside = torch.eq(clamped, codes, out=codes)  # 1 inside the range, 0 where clamped (as x's dtype)
        if zero_point:
            clamped.sub_(zero_point)
        xq = clamped * scale
        out = xq if keep is None else torch.lerp(x, xq, keep)
        ctx.grad_factor = grad_factor
        step = None
        if ctx.needs_input_grad[1]:  # d out / d s: (q - z) - x/s inside the range, (q - z) outside; 0 where dropped
            step = clamped.addcmul_(t, inside, value=-1.0)
            if keep is not None:
                step.mul_(keep)
        if keep is not None:  # d out / d x: the STE's in-range indicator where kept, 1 where dropped
            inside = torch.lerp(inside.new_ones(()), inside, keep)
        ctx.save_for_backward(inside, step)
        return out

    @staticmethod
    def backward(ctx, grad):
        inside, step = ctx.saved_tensors
        grad_x = grad * inside if ctx.needs_input_grad[0] else None
        grad_s = None
        if step is not None:
            grad_s = (torch.dot(grad.reshape(-1), step.reshape(-1)) * ctx.grad_factor).reshape(1)
        return grad_x, grad_s, None, None, None, None


def fake_quantize_lsq(x: torch.Tensor, scale: torch.Tensor, zero_point: float, qmax: int, grad_factor: float = 1.0,
                      keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per-tensor fake quantization of ``x`` (step ``scale``, a 1-element tensor; integer ``zero_point``)
    with the STE gradient for x and the LSQ gradient (times ``grad_factor``) for the step; with ``keep``
    (a 0/1 tensor like x, see :func:`keep_mask`) only the elements where it is 1 are quantized."""
    return _FakeQuantPerTensor.apply(x, scale, zero_point, qmax, grad_factor, keep)


def fake_quantize_inplace(x: torch.Tensor, scale: torch.Tensor, zero_point: float, qmax: int) -> torch.Tensor:
    """Per-tensor fake quantization without autograd, as torch's fused kernel computes it (x·(1/s), round
    half to even, clamp), in place on a fresh tensor: about 5 element-wise passes."""
    out = x * scale.reciprocal()
    out.round_()
    if zero_point:
        out.add_(zero_point)
    out.clamp_(0, qmax)
    if zero_point:
        out.sub_(zero_point)
    return out.mul_(scale)


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
