"""Reconstruction objectives (REFERENCE.md section 3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("lp", "fisher")


def lp_loss(pred: torch.Tensor, target: torch.Tensor, p: float = 2.0,
            weight: torch.Tensor | None = None, dim: int = 1) -> torch.Tensor:
    """Return the mean over batch and positions of Σ_channels w·|pred − target|^p (channels: ``dim``, 1 for
    NCHW maps; PTQ4SAM sums over the last dim).

    ``weight`` (same shape) turns it into the Fisher-diagonal loss of BRECQ with w = (|g| + 1)².
    """
    per = pred.numel() // pred.shape[dim] if pred.dim() > 1 else pred.numel()
    if weight is None and p >= 2 and not target.requires_grad:
        return _LpLoss.apply(pred, target, float(p), per)
    diff = (pred - target).abs()
    err = diff.square() if p == 2 else diff.pow(p)
    if weight is not None:
        err = err * weight
    return err.sum() / per


class _LpLoss(torch.autograd.Function):
    """Σ|pred − target|^p / ``per`` for p ≥ 2 as |d|^(p−2)·d·d: one power, and a backward of one product
    (p·|d|^(p−2)·d), instead of autograd's two powers, a sign and four more passes."""

    @staticmethod
    def forward(ctx, pred, target, p: float, per: int):
        d = pred - target
        rd = d if p == 2 else d.abs().pow_(p - 2).mul_(d)
        ctx.save_for_backward(rd)
        ctx.factor = p / per
        return torch.dot(rd.reshape(-1), d.reshape(-1)) / per

    @staticmethod
    def backward(ctx, grad):
        (rd,) = ctx.saved_tensors
        return rd * (grad * ctx.factor), None, None, None


def fisher_weight(grad: torch.Tensor) -> torch.Tensor:
    """Return (|g| + 1)²: BRECQ's damped squared gradient of the task loss at the unit output."""
    return (grad.abs() + 1.0).square()


def logits_kl(fp_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Return KL(softmax(fp/T) ‖ softmax(q/T)), batch-mean."""
    return F.kl_div(F.log_softmax(q_logits / temperature, dim=1), F.softmax(fp_logits / temperature, dim=1),
                    reduction="batchmean")
