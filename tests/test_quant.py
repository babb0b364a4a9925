"""Quantizer maths, STE gradients and range searches against hand-computed values."""
import pytest
import torch

from ptqvision.errors import ConfigError, InvariantError
from ptqvision.quant import (LpObserver, MinMaxObserver, MseObserver, UniformQuantizer, fake_quantize,
                             fake_quantize_inplace, fake_quantize_lsq, keep_mask, qparams_from_range, round_ste)
from ptqvision.quant.observers import AvgMinMaxObserver, lp_search, mse_search


def test_fake_quantize_matches_hand_computation():
    x = torch.tensor([-1.0, -0.2, 0.0, 0.3, 0.74, 2.0])
    # bits 3 (codes 0..7), s = 0.25, z = 2: round(x/s)+z = [-2, 1, 2, 3, 5, 10] -> clamp [0, 1, 2, 3, 5, 7]
    out = fake_quantize(x, torch.tensor(0.25), torch.tensor(2.0), 7)
    assert torch.equal(out, torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.75, 1.25]))


def test_qparams_from_range_hand_values():
    scale, zp = qparams_from_range(torch.tensor([-1.0]), torch.tensor([3.0]), bits=2)
    assert scale.item() == pytest.approx(4 / 3)
    assert zp.item() == 1.0  # round(1 / (4/3)) = round(0.75)
    # a one-sided range is widened to contain 0, so zero is exactly representable
    scale, zp = qparams_from_range(torch.tensor([2.0]), torch.tensor([17.0]), bits=4)
    assert scale.item() == pytest.approx(17 / 15) and zp.item() == 0.0
    scale, zp = qparams_from_range(torch.tensor([-2.0]), torch.tensor([1.0]), bits=4, symmetric=True)
    assert scale.item() == pytest.approx(2 / 7) and zp.item() == 8.0


def test_round_ste_forward_rounds_backward_is_identity():
    x = torch.tensor([0.2, 0.7, -1.6], requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y, torch.tensor([0.0, 1.0, -2.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_ste_gradient_is_one_inside_range_zero_when_clamped():
    x = torch.tensor([-3.0, -0.3, 0.1, 0.6, 5.0], requires_grad=True)
    scale = torch.tensor(0.25, requires_grad=True)
    out = fake_quantize(x, scale, torch.tensor(4.0), 7)  # representable range [-1.0, 0.75]
    out.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    # LSQ: d/ds of s*(clamp(round(x/s)+z)-z) is (q - z) - x/s inside, the clamped code outside
    expected = (-4.0) + (round(-0.3 / 0.25) + 0.3 / 0.25) + (0.0 - 0.1 / 0.25) + (2.0 - 0.6 / 0.25) + 3.0
    assert scale.grad.item() == pytest.approx(expected, abs=1e-5)


def test_lp_search_beats_minmax_on_long_tailed_data():
    torch.manual_seed(0)
    x = torch.distributions.Laplace(0.0, 1.0).sample((200_000,))  # long tails, like post-conv data
    for bits in (2, 4):
        mm, lp = MinMaxObserver(), LpObserver()
        mm.update(x)
        lp.update(x)
        err = {}
        for name, obs in (("minmax", mm), ("lp", lp)):
            s, z = obs.qparams(bits, symmetric=False)
            err[name] = (fake_quantize(x, s, z, 2 ** bits - 1) - x).abs().pow(2.4).mean().item()
        assert err["lp"] < 0.7 * err["minmax"], (bits, err)


def test_lp_search_is_vectorised_per_channel_and_never_worse_than_full_range():
    torch.manual_seed(0)
    w = torch.randn(16, 3, 3, 3) * torch.logspace(-2, 1, 16).view(-1, 1, 1, 1)
    rows = w.reshape(16, -1)
    s, z = lp_search(rows, rows.amin(1), rows.amax(1), bits=4, symmetric=False)
    s0, z0 = qparams_from_range(rows.amin(1), rows.amax(1), 4)
    err = (fake_quantize(rows, s[:, None], z[:, None], 15) - rows).abs().pow(2.4).mean(1)
    err0 = (fake_quantize(rows, s0[:, None], z0[:, None], 15) - rows).abs().pow(2.4).mean(1)
    assert s.shape == (16,) and torch.all(err <= err0 + 1e-12)
    assert torch.all(s <= s0 + 1e-12)  # the search only ever shrinks the range


def test_avg_minmax_averages_batch_extremes():
    obs = AvgMinMaxObserver()
    obs.update(torch.tensor([0.0, 2.0]))
    obs.update(torch.tensor([-2.0, 4.0]))
    assert obs.lo.item() == -1.0 and obs.hi.item() == 3.0


def test_quantizer_states_and_drop_probability():
    q = UniformQuantizer(bits=4)
    with pytest.raises(InvariantError):
        q(torch.ones(3))
    assert "not calibrated" in q.eval_problems()
    x = torch.linspace(-1, 1, 10_000)
    q.start_observing()
    assert torch.equal(q(x), x)  # observing passes through
    assert "observer still active" in q.eval_problems()
    q.finish_observing()
    assert q.eval_problems() == []
    xq = q(x)
    assert len(torch.unique(xq)) <= 16
    q.drop_prob = 0.5
    torch.manual_seed(0)
    mixed = q(x)
    from_q = (mixed == xq)
    from_x = (mixed == x)
    assert torch.all(from_q | from_x)
    assert 0.4 < (from_q & ~from_x).float().mean() / (~(xq == x)).float().mean() < 0.6  # element-wise
    assert any("drop probability" in p for p in q.eval_problems())


def test_bits_outside_range_rejected():
    for bad in (1, 9, 4.0, True):
        with pytest.raises(ConfigError, match="2..8"):
            UniformQuantizer(bits=bad)


def test_fused_inference_path_equals_autograd_path():
    torch.manual_seed(0)
    q = UniformQuantizer(bits=3, num_channels=4, ch_axis=0)
    w = torch.randn(4, 5, 3, 3)
    q.calibrate_from(w)
    with torch.no_grad():
        fused = q(w)
    exact = fake_quantize(w, q.scale.view(-1, 1, 1, 1), q.zero_point.view(-1, 1, 1, 1), 7)
    assert torch.equal(fused, exact.detach())


@pytest.mark.parametrize("p", [0.5, 0.25])
def test_keep_mask_is_a_float_bernoulli_mask(p):
    torch.manual_seed(0)
    like = torch.empty(3, 7, 11, 131, dtype=torch.float64)  # not a multiple of 8
    mask = keep_mask(like, p)
    assert mask.shape == like.shape and mask.dtype == like.dtype
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs(mask.mean().item() - p) < 0.02
    assert not torch.equal(mask, keep_mask(like, p))  # fresh draws
    if p == 0.5:  # the table path: the 8 elements drawn from one byte are independent
        pairs = mask.reshape(-1)[: mask.numel() // 8 * 8].view(-1, 8)
        assert abs((pairs[:, 0] * pairs[:, 1]).mean().item() - 0.25) < 0.03


@pytest.mark.parametrize("zero_point", [0.0, 3.0, 8.0])
@pytest.mark.parametrize("drop", [False, True])
def test_cpu_fake_quantize_equals_torchs_learnable_kernel(zero_point, drop):
    """The plain-pass CPU node against torch's fused LSQ kernel (what runs on a GPU), drop composed with where."""
    torch.manual_seed(0)
    x = (torch.randn(4, 8, 16, 16) * 2).requires_grad_(True)
    scale = torch.tensor([0.13], requires_grad=True)
    keep = keep_mask(x, 0.5) if drop else None
    g = torch.randn_like(x)
    expected = torch._fake_quantize_learnable_per_tensor_affine(x, scale, torch.tensor([zero_point]), 0, 15, 0.37)
    if drop:
        expected = torch.where(keep.bool(), expected, x)
    want_x, want_s = torch.autograd.grad(expected, (x, scale), g)
    out = fake_quantize_lsq(x, scale, zero_point, 15, 0.37, keep)
    got_x, got_s = torch.autograd.grad(out, (x, scale), g)
    assert torch.equal(out, expected) and torch.equal(got_x, want_x)
    assert got_s.item() == pytest.approx(want_s.item(), rel=1e-5)
    inference = torch.fake_quantize_per_tensor_affine(x.detach(), scale.detach(),
                                                      torch.tensor(int(zero_point), dtype=torch.int32), 0, 15)
    assert torch.equal(fake_quantize_inplace(x.detach(), scale.detach(), zero_point, 15), inference)


def test_quantizer_cpu_path_and_fused_path_agree():
    """UniformQuantizer's CPU branch and its fused-kernel branch (used on a GPU) give the same step gradient."""
    torch.manual_seed(0)
    q = UniformQuantizer(bits=4)
    x = torch.randn(8, 4, 6, 6)
    q.calibrate_from(x)
    q.scale.requires_grad_(True)
    grads = []
    for out in (q(x), q._learnable(x)):
        grads.append(torch.autograd.grad((out * x).sum(), q.scale)[0])
    assert grads[0].item() == pytest.approx(grads[1].item(), rel=1e-5) and grads[0].item() != 0


def test_weight_search_uses_every_value_activation_memory_is_bounded():
    torch.manual_seed(0)
    w = torch.randn(4, 300_000)
    w[:, 7] = 40.0  # one outlier per channel must be seen by the search
    q = UniformQuantizer(bits=4, num_channels=4, ch_axis=0)
    q.calibrate_from(w)
    s, z = lp_search(w, w.amin(1), w.amax(1), 4, False)
    assert torch.equal(q.scale.data, s) and torch.equal(q.zero_point, z)

    obs = LpObserver(max_samples=1000)
    for i in range(50):
        obs.update(torch.full((400,), float(i)))
    assert obs.reservoir.numel() == 1000 and obs.seen == 20_000
    assert abs(obs.reservoir.mean().item() - 24.5) < 1.5  # a uniform sample of everything seen


def test_reservoir_replacement_latest_column_wins_on_repeated_slots():
    from ptqvision.quant.observers import scatter_latest

    g = torch.Generator().manual_seed(0)
    slot = torch.randint(0, 40, (5000,), generator=g)  # 30 real slots, heavy repetition, some out of range
    source = torch.randn(3, 5000, generator=g)
    expected = torch.zeros(3, 30)
    for j in range(5000):  # the sequential definition
        if slot[j] < 30:
            expected[:, slot[j]] = source[:, j]
    torch.set_num_threads(2)
    try:
        got = torch.zeros(3, 30)
        scatter_latest(got, slot, source)
    finally:
        torch.set_num_threads(1)
    assert torch.equal(got, expected)


def brute_force_mse(rows, bits, symmetric=False, p=2.4, candidates=100):
    """QDrop's MSE search by its definition, one channel, range and zero point at a time: candidate i spans
    i/100 of [min, max] (widened to hold 0); one-sided data keeps that range's zero point, two-sided data
    tries every zero point; the least Σ|x − Q(x)|^p wins, ties to the first (smaller range, then zero point)."""
    qmax = 2 ** bits - 1
    scales, zero_points = [], []
    for x in rows:
        lo, hi = min(x.min(), torch.tensor(0.0)), max(x.max(), torch.tensor(0.0))
        best = (float("inf"), None, None)
        for i in range(1, candidates + 1):
            r = torch.tensor(float(i)) / candidates
            if symmetric:
                s = torch.clamp(torch.maximum(-r * lo, r * hi) / (2 ** (bits - 1) - 1), min=1e-8)
                zs = [float(2 ** (bits - 1))]
            else:
                s = torch.clamp((r * hi - r * lo) / qmax, min=1e-8)
                zs = range(qmax + 1) if lo < 0 < hi else [0.0 if lo == 0 else float(qmax)]
            for z in zs:
                z = torch.tensor(float(z))
                err = (fake_quantize(x, s, z, qmax) - x).abs().pow(p).sum(dtype=torch.float64).item()
                if err < best[0]:
                    best = (err, s, z)
        scales.append(best[1])
        zero_points.append(best[2])
    return torch.stack(scales), torch.stack(zero_points)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_mse_observer_matches_brute_force_per_channel(bits):
    g = torch.Generator().manual_seed(bits)
    channels = 4 if bits < 8 else 2
    w = torch.randn(channels, 3, 2, 2, generator=g) * torch.rand(channels, 1, 1, 1, generator=g) * 2
    w[0] = w[0].abs()  # one-sided, positive: 1-D search
    if channels > 2:
        w[1] = -w[1].abs() - 0.5  # one-sided, negative
        w[3] = (w[3] * 8).round() / 8  # values on a grid: exact ties between zero points
    q = UniformQuantizer(bits=bits, num_channels=channels, ch_axis=0, observer="qdrop_mse")
    q.calibrate_from(w)
    scale, zero_point = brute_force_mse(w.reshape(channels, -1), bits)
    assert torch.equal(q.zero_point, zero_point) and torch.equal(q.scale.data, scale)
    assert zero_point[0] == 0 and (channels == 2 or zero_point[1] == 2 ** bits - 1)


@pytest.mark.parametrize("bits,one_sided", [(2, False), (4, False), (4, True), (3, True)])
def test_mse_observer_matches_brute_force_per_tensor(bits, one_sided):
    g = torch.Generator().manual_seed(10 + bits)
    batches = [torch.randn(4, 30, generator=g) + 0.3 for _ in range(2)]
    if one_sided:
        batches = [b.relu() for b in batches]
    obs = MseObserver()
    for b in batches:  # an activation observer: everything seen is kept while it fits its sample
        obs.update(b)
    scale, zero_point = obs.qparams(bits, symmetric=False)
    ref_scale, ref_zp = brute_force_mse(torch.cat([b.reshape(1, -1) for b in batches], dim=1), bits)
    assert torch.equal(zero_point, ref_zp) and torch.equal(scale, ref_scale)
    assert (zero_point.item() == 0) is one_sided


def test_mse_search_symmetric_and_never_worse_than_minmax():
    torch.manual_seed(0)
    rows = torch.distributions.Laplace(0.0, 1.0).sample((3, 500)) + torch.tensor([[0.0], [0.5], [-2.0]])
    s, z = mse_search(rows, rows.amin(1), rows.amax(1), 4, symmetric=True)
    ref_s, ref_z = brute_force_mse(rows, 4, symmetric=True)
    assert torch.equal(s, ref_s) and torch.equal(z, ref_z) and torch.all(z == 8)
    s, z = mse_search(rows, rows.amin(1), rows.amax(1), 4)
    s0, z0 = qparams_from_range(rows.amin(1), rows.amax(1), 4)  # candidate i = 100 with its own zero point
    err = (fake_quantize(rows, s[:, None], z[:, None], 15) - rows).abs().pow(2.4).mean(1)
    err0 = (fake_quantize(rows, s0[:, None], z0[:, None], 15) - rows).abs().pow(2.4).mean(1)
    assert torch.all(err < 0.9 * err0)  # long tails: clipping pays
