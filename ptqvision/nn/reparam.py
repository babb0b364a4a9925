"""RepQ-ViT's reparameterisation of a post-LayerNorm activation from per-channel to per-tensor quantization.

Derivation (uniform affine quantization, code = clamp(round(x/δ) + z, 0, 2^b − 1)). Per channel c of the
LayerNorm output y the codes are clamp(round(y_c/δ_c) + z_c, 0, Q). Let δ̄ = mean_c δ_c and
z̄ = round(mean_c z_c) (an integer, which is what makes the codes match exactly), r1_c = δ_c/δ̄ and
r2_c = z_c − z̄ (an integer). Define the new output

    y'_c = y_c / r1_c + r2_c·δ̄,   so that   y'_c/δ̄ = y_c/δ_c + r2_c.

Since r2_c is an integer, round(y'_c/δ̄) + z̄ = round(y_c/δ_c) + r2_c + z̄ = round(y_c/δ_c) + z_c: the
per-tensor codes of y' with (δ̄, z̄) equal the per-channel codes of y with (δ_c, z_c), before and after
the clamp; and the dequantized values agree too, δ̄·(code − z̄) = δ_c·(code − z_c)/r1_c + r2_c·δ̄.
With y_c = γ_c·n_c + β_c (n the normalised input) this is a new LayerNorm

    γ'_c = γ_c / r1_c,   β'_c = β_c / r1_c + r2_c·δ̄ = (β_c + r2_c·δ_c) / r1_c.

A consumer W·y + b sees y = r1 ⊙ (y' − r2·δ̄), so W·y + b = W'·y' + b' with

    W'_{:,c} = W_{:,c}·r1_c   (columns × r1),   b' = b − W'·(r2·δ̄) = b − W·(r2 ⊙ δ).

(REFERENCE.md's summary writes the bias terms with the opposite sign, i.e. r2 = z̄ − z_c; the result
is the same.)
"""
from __future__ import annotations

import torch
from torch import nn

from ..quant.functional import qparams_from_range


def per_channel_qparams(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale_c, zero_point_c), asymmetric, mapping each channel's [lo_c, hi_c] onto 0..2^bits − 1."""
    return qparams_from_range(lo, hi, bits, symmetric=False)


@torch.no_grad()
def reparameterize_layernorm(norm: nn.LayerNorm, linears: list[nn.Module], scale_c: torch.Tensor,
                             zero_point_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite ``norm`` and its consumers ``linears`` in place (see the module docstring) so that per-tensor
    quantization of the new LayerNorm output with the returned (δ̄, z̄) gives the codes per-channel
    quantization of the old output with (``scale_c``, ``zero_point_c``) gave, and every linear's
    full-precision output is unchanged up to float error.

    Returns (scale_mean, zero_point_mean): 0-dim tensors, δ̄ = mean(δ_c) and z̄ = round(mean(z_c)).
    ``zero_point_c`` must hold integers. A bias-less linear (or LayerNorm) gets a bias parameter. Weight
    quantizers of the linears must be calibrated after this (their weights change).
    """
    if norm.weight is None:
        raise ValueError("reparameterize_layernorm needs a LayerNorm with affine parameters (elementwise_affine)")
    if len(norm.normalized_shape) != 1:
        raise ValueError(f"reparameterize_layernorm needs a LayerNorm over one dim, got {tuple(norm.normalized_shape)}")
    channels = norm.normalized_shape[0]
    scale_c = scale_c.detach().reshape(-1)
    zero_point_c = zero_point_c.detach().reshape(-1)
    if scale_c.numel() != channels or zero_point_c.numel() != channels:
        raise ValueError(f"need {channels} per-channel scales and zero points, got {scale_c.numel()} and "
                         f"{zero_point_c.numel()}")
    if not bool((scale_c > 0).all()):
        raise ValueError("per-channel scales must be positive")
    if not torch.allclose(zero_point_c, zero_point_c.round(), atol=1e-4, rtol=0.0):
        raise ValueError("per-channel zero points must be integers")
    for lin in linears:
        if lin.weight.dim() != 2 or lin.weight.shape[1] != channels:
            raise ValueError(f"a consumer's weight {tuple(lin.weight.shape)} does not take {channels} input channels")

    # float64 for the factors and new parameters: r1 spans orders of magnitude across channels
    delta = scale_c.double()
    zp = zero_point_c.double().round()
    delta_mean = delta.mean()
    zp_mean = zp.mean().round()  # an integer z̄ keeps r2 integral, which is what makes the codes equal
    r1 = delta / delta_mean
    r2 = zp - zp_mean
    shift = r2 * delta_mean  # r2·δ̄, added to every output channel of the LayerNorm

    weight = norm.weight.double()
    bias = norm.bias.double() if norm.bias is not None else torch.zeros_like(weight)
    new_bias = (bias / r1.to(weight.device) + shift.to(weight.device)).to(norm.weight.dtype)
    norm.weight.copy_((weight / r1.to(weight.device)).to(norm.weight.dtype))
    if norm.bias is None:
        norm.bias = nn.Parameter(new_bias)
    else:
        norm.bias.copy_(new_bias)

    for lin in linears:
        w = lin.weight.double()
        w_new = w * r1.to(w.device)
        b = lin.bias.double() if getattr(lin, "bias", None) is not None else torch.zeros(w.shape[0], dtype=w.dtype,
                                                                                           device=w.device)
        b_new = (b - w_new @ shift.to(w.device)).to(lin.weight.dtype)
        lin.weight.copy_(w_new.to(lin.weight.dtype))
        if getattr(lin, "bias", None) is None:
            lin.bias = nn.Parameter(b_new, requires_grad=lin.weight.requires_grad)
        else:
            lin.bias.copy_(b_new)
    return delta_mean.to(scale_c.dtype), zp_mean.to(zero_point_c.dtype)
