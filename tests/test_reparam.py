"""RepQ-ViT LayerNorm reparameterisation: per-channel codes become per-tensor codes, FP outputs unchanged."""
import copy

import pytest
import torch
from torch import nn

from ptqvision.nn.reparam import per_channel_qparams, reparameterize_layernorm
from ptqvision.quant.functional import fake_quantize

C, BITS = 32, 4
QMAX = 2 ** BITS - 1


def setup(seed: int = 0, ln_bias: bool = True):
    """A LayerNorm whose output channels differ by orders of magnitude (γ spans e^±3, β ±3), two consumers
    (the second bias-less), calibration and test inputs (the test ones wider, so some codes clamp)."""
    g = torch.Generator().manual_seed(seed)
    norm = nn.LayerNorm(C, bias=ln_bias)
    with torch.no_grad():
        norm.weight.copy_(torch.exp(1.5 * torch.randn(C, generator=g)) * torch.sign(torch.randn(C, generator=g)))
        if ln_bias:
            norm.bias.copy_(3 * torch.randn(C, generator=g))
    fc1, fc2 = nn.Linear(C, 48), nn.Linear(C, 16, bias=False)
    with torch.no_grad():
        for lin in (fc1, fc2):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / C ** 0.5)
        fc1.bias.copy_(torch.randn(48, generator=g))
    channel_scale = torch.exp(torch.randn(C, generator=g))
    x_cal = torch.randn(8, 50, C, generator=g) * channel_scale + torch.randn(C, generator=g)
    x_test = 1.3 * torch.randn(16, 50, C, generator=g) * channel_scale + torch.randn(C, generator=g)
    return norm, fc1, fc2, x_cal, x_test


def channel_qparams(norm: nn.LayerNorm, x_cal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        y = norm(x_cal).reshape(-1, C)
    return per_channel_qparams(y.amin(0), y.amax(0), BITS)


def codes(y: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.round(y / scale) + zero_point, 0, QMAX)


@pytest.mark.parametrize("ln_bias", [True, False])
def test_outputs_unchanged_and_codes_equal(ln_bias):
    norm, fc1, fc2, x_cal, x_test = setup(ln_bias=ln_bias)
    scale_c, zp_c = channel_qparams(norm, x_cal)
    assert scale_c.max() / scale_c.min() > 20  # the inter-channel variation the method exists for
    old_norm, old_fc1, old_fc2 = copy.deepcopy(norm), copy.deepcopy(fc1), copy.deepcopy(fc2)

    scale_t, zp_t = reparameterize_layernorm(norm, [fc1, fc2], scale_c, zp_c)

    assert scale_t.dim() == 0 and zp_t.dim() == 0
    assert scale_t.item() == pytest.approx(scale_c.mean().item(), rel=1e-6)
    assert zp_t.item() == round(zp_c.mean().item())
    assert isinstance(fc2.bias, nn.Parameter) and fc2.bias.shape == (16,)
    assert norm.bias is not None

    with torch.no_grad():
        y_old, y_new = old_norm(x_test), norm(x_test)
        # (a) full-precision outputs: atol 1e-5 of the output's largest magnitude (float32 error only)
        for old, new in ((old_fc1, fc1), (old_fc2, fc2)):
            ref = old(y_old)
            assert torch.allclose(new(y_new), ref, rtol=0, atol=1e-5 * ref.abs().max().item())
        # (b) per-tensor codes of the new output == per-channel codes of the old one; round(·) at a tie can
        # flip by float error only: at most 1e-4 of the codes, each by one step
        before = codes(y_old, scale_c, zp_c)
        after = codes(y_new, scale_t, zp_t)
        differ = before != after
        assert differ.float().mean().item() <= 1e-4
        assert (before - after).abs().max().item() <= 1
        assert ((before == 0) | (before == QMAX)).any()  # the test data reach the clamps too
        # the purpose: per-tensor quantization of y' into the new fc1 gives what per-channel quantization of
        # y into the old fc1 gave
        ref = old_fc1(fake_quantize(y_old, scale_c, zp_c, QMAX))
        out = fc1(fake_quantize(y_new, scale_t, zp_t, QMAX))
        assert torch.allclose(out, ref, rtol=0, atol=1e-4 * ref.abs().max().item())


def test_without_reparameterisation_per_tensor_codes_differ():
    # the check above can fail: the old output quantized per tensor with the same (δ̄, z̄) gives other codes
    norm, fc1, fc2, x_cal, x_test = setup(seed=1)
    scale_c, zp_c = channel_qparams(norm, x_cal)
    with torch.no_grad():
        y_old = norm(x_test)
    before = codes(y_old, scale_c, zp_c)
    scale_t, zp_t = reparameterize_layernorm(norm, [fc1, fc2], scale_c, zp_c)
    assert (codes(y_old, scale_t, zp_t) != before).float().mean() > 0.3


def test_invalid_inputs():
    norm, fc1, fc2, x_cal, _ = setup()
    scale_c, zp_c = channel_qparams(norm, x_cal)
    with pytest.raises(ValueError, match="affine"):
        reparameterize_layernorm(nn.LayerNorm(C, elementwise_affine=False), [fc1], scale_c, zp_c)
    with pytest.raises(ValueError):
        reparameterize_layernorm(norm, [nn.Linear(C + 1, 4)], scale_c, zp_c)
    with pytest.raises(ValueError):
        reparameterize_layernorm(norm, [fc1], scale_c[:-1], zp_c[:-1])
    with pytest.raises(ValueError, match="integer"):
        reparameterize_layernorm(norm, [fc1], scale_c, zp_c + 0.5)
    with pytest.raises(ValueError, match="positive"):
        reparameterize_layernorm(norm, [fc1], -scale_c, zp_c)


def test_per_channel_qparams_map_range_to_codes():
    lo, hi = torch.tensor([-1.0, 0.5, -3.0]), torch.tensor([2.0, 4.0, -1.0])
    scale, zp = per_channel_qparams(lo, hi, BITS)
    # ranges widened to contain 0; lo → code 0 and hi → code 15 (within rounding of the zero point)
    assert torch.allclose(scale, torch.tensor([3.0, 4.0, 3.0]) / QMAX)
    assert torch.equal(zp, torch.round(torch.tensor([1.0, 0.0, 3.0]) / scale))
