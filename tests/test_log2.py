"""Log2 quantizer with adaptive granularity (PTQ4SAM AGQ): levels, τ search, states, gradients, QDrop."""
import json
import math

import pytest
import torch

from ptqvision.errors import ConfigError, InvariantError
from ptqvision.quant import Log2Quantizer
from ptqvision.quant.log2 import Log2Search, bounded_search, log2_levels


def fixed(bits: int, tau: int, scale: float, mode: str = "agq") -> Log2Quantizer:
    """A quantizer set to (scale, τ) through its state dict, the way a checkpoint restores it."""
    q = Log2Quantizer(bits=bits, mode=mode)
    q.load_state_dict({"scale": torch.tensor([scale]), "tau": torch.tensor(float(tau)),
                       "calibrated": torch.tensor(True)})
    return q


def calibrate(q: Log2Quantizer, batches: list[tuple[torch.Tensor, torch.Tensor | None]]) -> Log2Quantizer:
    q.start_observing()
    for a, v in batches:
        q(a, partner=v)
    q.finish_observing()
    return q


@pytest.mark.parametrize("tau", [1, 2, 4])
def test_levels_are_exact_and_out_of_range_codes_zero_or_saturate(tau):
    s, bits = 0.5, 3  # qmax = 7
    q = fixed(bits, tau, s)
    k = torch.arange(8, dtype=torch.float64)
    on_grid = s * torch.exp2(-k / tau)
    assert torch.equal(q(on_grid), on_grid)  # every code 0..7 is a level
    # code 2^b = 8 (and beyond) gives exactly 0, not the last level s·2^(−7/τ)
    below = s * torch.exp2(-torch.tensor([8.0, 9.0, 40.0], dtype=torch.float64) / tau)
    assert torch.equal(q(below), torch.zeros(3, dtype=torch.float64))
    # code 7.4/τ rounds to 7: the last level, not zero
    assert q(torch.tensor([s * 2 ** (-7.4 / tau)], dtype=torch.float64)).item() == pytest.approx(s * 2 ** (-7 / tau))
    # above s (q < 0) saturates at s; exact zeros (clamped to 1e-20) become 0
    assert torch.equal(q(torch.tensor([2 * s, 0.9, 0.0], dtype=torch.float64)),
                       torch.tensor([s, s, 0.0], dtype=torch.float64))


def test_known_values_round_in_the_log_domain():
    a = torch.tensor([0.3, 0.1, 0.02], dtype=torch.float64)
    # τ=1, s=1: −log2 = 1.74, 3.32, 5.64 → q = 2, 3, 6
    assert torch.allclose(fixed(4, 1, 1.0)(a), torch.tensor([0.25, 0.125, 1 / 64], dtype=torch.float64))
    # τ=2: 3.47, 6.64, 11.29 → q = 3, 7, 11 → 2^(−q/2)
    assert torch.allclose(fixed(4, 2, 1.0)(a), torch.exp2(-torch.tensor([3.0, 7.0, 11.0], dtype=torch.float64) / 2))
    # τ=4, 4 bits: 6.95, 13.29, 22.58 → q = 7, 13, 23 (≥ 16: zero)
    assert torch.allclose(fixed(4, 4, 1.0)(a), torch.tensor([2 ** -1.75, 2 ** -3.25, 0.0], dtype=torch.float64))


def test_log2_levels_masks():
    m, inside = log2_levels(torch.tensor([2.0, 1.0, 2 ** -3, 2 ** -9]), 1.0, 1.0, 7)
    assert m.tolist() == [1.0, 1.0, 0.125, 0.0]
    assert inside.tolist() == [0.0, 1.0, 1.0, 0.0]


def grid_map(tau: int, shape=(2, 3, 16, 24), seed: int = 0) -> torch.Tensor:
    """A map whose values are exactly on the 4-bit grid of τ with s = 1 (codes 0..15), 1.0 present."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 16, shape, generator=g).float()
    k.view(-1)[0] = 0.0
    return torch.exp2(-k / tau)


@pytest.mark.parametrize("best", [2, 4])
def test_search_picks_the_tau_whose_grid_holds_the_data(best):
    a = grid_map(best)
    v = torch.randn(2, 3, 24, 8, generator=torch.Generator().manual_seed(1))
    q = calibrate(Log2Quantizer(bits=4, mode="agq"), [(a, v), (a, v)])
    rec = q.search_record
    assert q.chosen_tau == best and rec["tau"] == best
    assert set(rec["errors"]) == {1, 2, 4}
    others = [e for t, e in rec["errors"].items() if t != best]
    assert rec["errors"][best] < 1e-3 * min(others)
    assert q.scale.item() == pytest.approx(1.0, rel=1e-3)
    assert rec["batches"] == 2 and rec["with_partner"] == 2
    assert torch.allclose(q(a), a, atol=1e-3)


def test_error_is_measured_after_the_product_with_v():
    # keys 0..11 hold τ=4 grid values, keys 12..23 τ=1 grid values (both include 1.0)
    a = torch.cat([grid_map(4, (2, 3, 16, 12), seed=2), grid_map(1, (2, 3, 16, 12), seed=3)], dim=-1)
    v = torch.randn(2, 3, 24, 8, generator=torch.Generator().manual_seed(4))
    v_first, v_second = v.clone(), v.clone()
    v_first[..., 12:, :] = 0  # only the τ=4 keys reach the output
    v_second[..., :12, :] = 0  # only the τ=1 keys reach the output
    only4 = calibrate(Log2Quantizer(bits=4), [(a, v_first)])
    only1 = calibrate(Log2Quantizer(bits=4), [(a, v_second)])
    alone = calibrate(Log2Quantizer(bits=4), [(a, None)])
    assert only4.chosen_tau == 4 and only1.chosen_tau == 1
    assert only4.search_record["errors"][4] < 1e-3 * only4.search_record["errors"][1]
    assert only1.search_record["errors"][1] < 1e-3 * only1.search_record["errors"][2]
    assert alone.search_record["with_partner"] == 0
    # without V the error of A itself counts: neither τ is exact on the whole map
    assert min(alone.search_record["errors"].values()) > 0


@pytest.mark.parametrize("mode,tau", [("log2", 1), ("log_sqrt2", 2)])
def test_fixed_modes_keep_their_tau(mode, tau):
    q = calibrate(Log2Quantizer(bits=4, mode=mode), [(grid_map(4), None)])
    assert q.chosen_tau == tau and float(q.tau) == tau
    assert set(q.search_record["errors"]) == {tau}
    assert q.describe()["observer"] == f"{mode}-search" and q.describe()["mode"] == mode


def test_constructor_validation():
    with pytest.raises(ConfigError):
        Log2Quantizer(mode="log3")
    with pytest.raises(ConfigError):
        Log2Quantizer(bits=1)
    with pytest.raises(ConfigError):
        Log2Quantizer(max_rows=0)


def test_states_observing_passthrough_uncalibrated_disabled():
    q = Log2Quantizer(bits=4)
    a = torch.softmax(torch.randn(2, 4, 10, 10), dim=-1)
    with pytest.raises(InvariantError):
        q(a)
    assert q.chosen_tau is None
    q.start_observing()
    out = q(a, partner=torch.randn(2, 4, 10, 5))
    assert out is a  # pass-through while observing
    q.finish_observing()
    assert q.is_calibrated and q.observer is None
    assert not torch.equal(q(a), a)
    q.enabled = False
    assert q(a) is a
    q.enabled = True
    q.start_observing()
    with pytest.raises(ValueError):  # a partner whose rows do not match A's keys
        q(a, partner=torch.randn(2, 4, 9, 5))
    q.abort_observing()
    with pytest.raises(RuntimeError):
        q.finish_observing()


def test_no_data_is_an_error():
    q = Log2Quantizer()
    q.start_observing()
    with pytest.raises(InvariantError):
        q.finish_observing()


def test_eval_problems():
    q = Log2Quantizer(bits=4)
    assert "not calibrated" in q.eval_problems()
    calibrate(q, [(grid_map(2), None)])
    assert q.eval_problems() == []
    q.drop_prob = 0.5
    assert any("drop probability" in p for p in q.eval_problems())
    q.drop_prob = 1.0
    q.start_observing()
    assert "observer still active" in q.eval_problems()
    q.abort_observing()
    q.set_bits(3)
    assert "not calibrated" in q.eval_problems() and q.bits == 3


def test_state_dict_round_trip():
    a = grid_map(4)
    q = calibrate(Log2Quantizer(bits=4), [(a * 0.7, None)])
    sd = q.state_dict()
    assert set(sd) == {"scale", "tau", "calibrated"}
    q2 = Log2Quantizer(bits=4)
    q2.load_state_dict(sd)
    assert q2.is_calibrated and q2.chosen_tau == q.chosen_tau == 4
    assert torch.equal(q2.scale, q.scale) and q2.scale.item() == pytest.approx(0.7, rel=1e-3)
    x = torch.rand(3, 20, 20)
    assert torch.equal(q2(x), q(x))


def test_describe_is_stable_and_json():
    q = Log2Quantizer(bits=6, mode="agq")
    d = q.describe()
    assert d == {"type": "log2", "bits": 6, "granularity": "tensor", "symmetric": False,
                 "observer": "agq-search", "mode": "agq"}
    calibrate(q, [(grid_map(4), None)])
    assert q.describe() == d  # the searched τ is not part of the placement record
    json.dumps(d)
    assert "tau=4" in repr(q) and Log2Quantizer.needs_partner and q.learnable_steps() == [q.scale]


def test_gradients_for_scale_and_input():
    s, tau = 0.8, 2
    q = fixed(4, tau, s)
    q.double()
    # codes −2..18 at a third of a code off the level: rounding is far from a tie, so small changes of s
    # keep every code (q < 0 at the top, q ≥ 16 zeroed at the bottom)
    codes = torch.arange(-2, 19, dtype=torch.float64)
    x = (s * torch.exp2(-(codes + 0.3) / tau)).requires_grad_(True)
    w = torch.linspace(-1, 2, codes.numel(), dtype=torch.float64)
    q.scale.requires_grad_(True)
    (q(x) * w).sum().backward()
    inside = (codes >= 0) & (codes <= 15)
    assert torch.equal(x.grad, w * inside)  # straight through inside, 0 where saturated or zeroed
    level = torch.where(codes < 0, torch.ones_like(codes), torch.exp2(-codes / tau)) * (codes <= 15)
    assert q.scale.grad.item() == pytest.approx((w * level).sum().item(), rel=1e-12)
    # finite difference with the codes unchanged
    eps = 1e-6
    with torch.no_grad():
        def loss(scale: float) -> float:
            probe = fixed(4, tau, s).double()
            probe.scale.fill_(scale)  # set in float64: a float32 state dict would round s ± eps
            return (probe(x.detach()) * w).sum().item()
        fd = (loss(s + eps) - loss(s - eps)) / (2 * eps)
    assert q.scale.grad.item() == pytest.approx(fd, rel=1e-6)


def test_drop_prob_keeps_about_half_unquantized():
    torch.manual_seed(0)
    q = fixed(4, 1, 1.0)
    codes = torch.randint(0, 12, (100, 100)).float()
    x = torch.exp2(-(codes + 0.3))  # every element changes when quantized
    xq = q(x)
    assert not (xq == x).any()
    q.drop_prob = 0.5
    out = q(x)
    kept = out == x
    assert 0.45 < kept.float().mean().item() < 0.55
    assert torch.equal(out[~kept], xq[~kept])


def test_bounded_search_finds_minimum_within_budget():
    seen: dict[float, float] = {}

    def f(s: float) -> float:  # a bowl at 0.3 in log space with ripples (local minima) on it
        value = (math.log(s) - math.log(0.3)) ** 2 + 0.05 * math.sin(40 * math.log(s)) ** 2
        seen[s] = value
        return value

    s, fs = bounded_search(f, 0.01, 1.0, evals=36)
    assert len(seen) == 36 and all(0.01 * (1 - 1e-12) <= c <= 1.0 + 1e-12 for c in seen)
    assert fs == min(seen.values()) and seen[s] == fs  # the best point evaluated is returned
    assert abs(math.log(s / 0.3)) < 0.1
    assert fs < 0.01  # near the global minimum, not in a ripple's local one far away


def test_search_rows_are_bounded():
    search = Log2Search((1,), bits=4, max_rows=64)
    rows, v = search._rows(torch.rand(4, 3, 50, 50), torch.rand(4, 3, 50, 7))
    assert rows.shape[0] * rows.shape[1] <= 64 and rows.shape[-1] == 50 and v.shape == (rows.shape[0], 50, 7)
    rows, v = search._rows(torch.rand(200, 10, 10), torch.rand(200, 10, 7))
    assert rows.shape == (64, 1, 10) and v.shape == (64, 10, 7)
    rows, _ = Log2Search((1,), bits=4, max_rows=None)._rows(torch.rand(4, 3, 50, 50), None)
    assert rows.shape == (12, 50, 50)
