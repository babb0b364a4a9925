"""PD-Quant's distribution correction (REFERENCE.md section 3).

The calibration input X of a block is nudged to X̃ so that, through the block's un-fused full-precision
copy, the per-sample per-channel statistics of every BatchNorm input match that BatchNorm's running
statistics, while X̃ stays close to X:

    Σ_BN (‖μ_BN − μ(X̃)‖² + ‖σ_BN − σ(X̃)‖²) / B  +  Lp(X̃, X) / λ_c

optimised with Adam (lr 1e-3, 500 steps, ReduceLROnPlateau with patience 100 down to 1e-5). The block's
output on X̃ becomes the reconstruction target, and X̃ replaces X in QDrop's input mixing.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.fx as fx
from torch import nn

from ..errors import ConfigError, PTQError
from ..nn.trace import trace
from ..models.fx_schedule import extract_module
from ..models.schedule import Item
from .losses import lp_loss


def bn_statistics_loss(inputs: list[torch.Tensor], bns: list[nn.BatchNorm2d]) -> torch.Tensor:
    """Return Σ_BN (‖μ_BN − μ(x)‖² + ‖σ_BN − σ(x)‖²)/B over the BatchNorms and their inputs x, with
    μ(x), σ(x) = sqrt(var(x) + eps) taken per sample and channel over the spatial positions."""
    total = inputs[0].new_zeros(())
    for x, bn in zip(inputs, bns):
        flat = x.flatten(2)
        mu = flat.mean(2)
        sigma = (flat.var(2, correction=1 if flat.shape[2] > 1 else 0) + bn.eps).sqrt()
        bn_sigma = (bn.running_var + bn.eps).sqrt()
        total = total + ((bn.running_mean - mu).square().sum() + (bn_sigma - sigma).square().sum()) / x.shape[0]
    return total


@contextmanager
def recording_inputs(modules: list[nn.Module]) -> Iterator[list[torch.Tensor | None]]:
    """Within the block, ``seen[i]`` is the latest input of ``modules[i]``."""
    seen: list[torch.Tensor | None] = [None] * len(modules)

    def hook(i: int) -> Callable:
        def record(_module: nn.Module, args: tuple) -> None:
            seen[i] = args[0]
        return record

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def correct_distribution(block: Callable[[torch.Tensor], torch.Tensor], bns: list[nn.BatchNorm2d], x: torch.Tensor,
                         lambda_c: float, iters: int = 500, lr: float = 1e-3, patience: int = 100,
                         min_lr: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Return (X̃, the block's output on X̃, a record with the statistics loss before and after and the
    mean Lp distance to X). ``block`` is full precision with its BatchNorms ``bns`` in eval mode."""
    x = x.detach()
    xt = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([xt], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=patience, min_lr=min_lr)
    with recording_inputs(bns) as seen:
        with torch.no_grad():
            block(x)
            before = float(bn_statistics_loss(seen, bns))
        for _ in range(iters):
            block(xt)
            loss = bn_statistics_loss(seen, bns) + lp_loss(xt, x, 2.0) / lambda_c
            (xt.grad,) = torch.autograd.grad(loss, xt)
            opt.step()
            sched.step(float(loss.detach()))
        with torch.no_grad():
            out = block(xt)
            after = float(bn_statistics_loss(seen, bns))
    xt = xt.detach()
    return xt, out, {"bn_loss_before": before, "bn_loss_after": after, "shift": float(lp_loss(xt, x, 2.0))}


def unfused_blocks(fp_model: nn.Module, names: list[str]) -> dict[str, tuple[Item, list[nn.BatchNorm2d]]]:
    """Return, for each block path in ``names`` whose un-fused copy in ``fp_model`` has BatchNorm2d layers,
    (the block as an item of one input and one output, its BatchNorms in order). ``fp_model`` is traced as
    is, BatchNorms kept, and shares its modules with the items."""
    gm: fx.GraphModule = trace(fp_model)
    out = {}
    for name in names:
        item = extract_module(gm, name)
        if len(item.inputs) != 1 or len(item.outputs) != 1:
            raise PTQError(f"distribution correction needs block {name} to have one input and one output "
                           f"(it has {len(item.inputs)} and {len(item.outputs)})")
        modules = [item.module.get_submodule(n.target) for n in item.module.graph.nodes if n.op == "call_module"]
        bns = [m for m in modules if isinstance(m, nn.BatchNorm2d)]
        if bns:
            out[name] = (item, bns)
    return out


def correction_blocks(fp_model: nn.Module | None, names: list[str]) -> dict[str, tuple[Item, list[nn.BatchNorm2d]]]:
    """Return :func:`unfused_blocks` for distribution correction, its BatchNorms in eval mode; raise
    ConfigError when there is no full-precision model or none of its blocks has a BatchNorm2d."""
    if fp_model is None:
        raise ConfigError("recon.dc=True needs the un-fused full-precision model (fp_model)")
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fp_model.modules()):
        raise ConfigError(f"recon.dc=True, but {type(fp_model).__name__} has no BatchNorm: distribution correction "
                          "needs BN statistics; set recon.dc=False")
    blocks = unfused_blocks(fp_model, names)
    if not blocks:
        raise ConfigError("recon.dc=True, but no block of the full-precision model has a BatchNorm2d (is it folded "
                          "into the weights?): distribution correction needs BN statistics; set recon.dc=False")
    for item, _ in blocks.values():
        item.module.eval()
    return blocks
