"""PD-Quant: the prediction-difference loss through a generic tail, distribution correction, the preset."""
import pytest
import torch
from torch import nn

from conftest import build_rtn, killed_after_units, train_quadrant_task

from ptqvision.errors import ConfigError
from ptqvision.methods import PRESETS
from ptqvision.nn import calibrate, check_ready, quantize
from ptqvision.recon import ReconSettings, logits_kl, reconstruct, run_items
from ptqvision.recon import correction as correction_module
from ptqvision.recon.correction import bn_statistics_loss, correct_distribution, recording_inputs
from ptqvision.recon import engine, unit_quantizers
from ptqvision.recon.engine import Reconstructor, UnitObjective


def settings(method="pdquant", **kw) -> ReconSettings:
    d = {**ReconSettings.defaults(), **PRESETS[method], "iters": 20, "dc_iters": 20, "act_reinit_samples": 32}
    d.update(kw)
    return ReconSettings.from_dict(d)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.b, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.bn2(self.b(torch.relu(self.bn1(self.a(x))))) + x)


class BNNet(nn.Module):
    """Stem, two residual blocks with BatchNorm, a head: BN-folded in the twin, un-fused in the model."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(Block(8), Block(8))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def trained():
    """BNNet trained to > 95 % on a synthetic 4-class task (a coloured patch in one quadrant)."""
    torch.manual_seed(0)
    return train_quadrant_task(BNNet())


# --- the prediction-difference term -------------------------------------------------------------------
def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    torch.manual_seed(0)
    z = torch.randn(8, 10) * 3
    for t in (1.0, 4.0):
        assert abs(float(logits_kl(z, z.clone(), t))) < 1e-6
        assert float(logits_kl(z, z + 5.0, t)) == pytest.approx(0.0, abs=1e-5)  # softmax is shift-invariant
        other = z + torch.randn_like(z)
        assert float(logits_kl(z, other, t)) > 1e-3
    # batch mean, no T² factor: a sharper temperature separates the same logits more
    other = z + torch.randn_like(z)
    assert float(logits_kl(z, other, 1.0)) > float(logits_kl(z, other, 4.0)) > 0


def fp_stream(r: Reconstructor, x: torch.Tensor) -> list[dict]:
    """The environment of graph values after each item, all in full precision."""
    env, out = {r.inputs[0]: x}, []
    with torch.no_grad(), r.full_precision():
        for item in r.items:
            for node, value in zip(item.outputs, item(*[env[n] for n in item.inputs])):
                env[node] = value
            out.append(dict(env))
    return out


@pytest.mark.parametrize("model_type,name", [("toy", None), ("torchvision", "resnet18"),
                                             ("torchvision", "mobilenet_v2"), ("torchvision", "regnet_x_400mf"),
                                             ("torchvision", "mnasnet1_0"), ("efficientnet_lite0", None)])
def test_the_tail_reproduces_the_model_when_nothing_is_quantized(model_type, name):
    from ptqvision.models import build_model

    torch.manual_seed(0)
    if model_type == "toy":
        model = BNNet().eval()
    else:
        model, _ = build_model(dict(type=model_type, name=name, weights="random", num_classes=1000, seed=0, kwargs={}))
    x = torch.randn(2, 3, 64, 64)
    gm = quantize(model, dict(w_bits=4, a_bits=4))
    calibrate(gm, [x], progress=False)
    r = Reconstructor(gm, [x], settings(), torch.device("cpu"), progress=False, fp_model=model)
    with torch.no_grad():
        expected = model(x)
    envs = fp_stream(r, x)
    unit_items = [k for k, item in enumerate(r.items) if item.unit is not None]
    assert len(unit_items) == len(r.units) > 2
    for k in unit_items:
        tail, inputs = r.tail(k)
        env = {n: envs[k][n] for n in inputs}
        env[r.items[k].outputs[0]] = envs[k][r.items[k].outputs[0]]
        with torch.no_grad(), r.full_precision({m for it in tail for m in it.module.modules()}):
            z = run_items(tail, env, r.final)
        # BN folding changes the rounding only
        assert torch.allclose(z, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max())), r.items[k].unit.name


def autograd_leaves(t: torch.Tensor) -> set:
    """Return the leaf tensors that ``t``'s gradient would reach."""
    leaves, seen, stack = set(), set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.add(fn.variable)
        stack.extend(f for f, _ in fn.next_functions)
    return leaves


def test_gradients_reach_only_the_current_units_learnable_parameters(trained):
    model, x = trained
    gm = build_rtn(model, x)
    seen = []
    orig = UnitObjective.__call__

    def spy(self, idx):
        rec, pd = orig(self, idx)
        layers, acts = unit_quantizers(self.item)
        unit_params = {m.weight_quantizer.alpha for m in layers} | {a.scale for a in acts if a.enabled}
        trainable = {p for p in gm.parameters() if p.requires_grad}
        seen.append((self.item.unit.name, autograd_leaves(rec), autograd_leaves(pd), unit_params, trainable,
                     {m.weight_quantizer.alpha for m in layers}))
        return rec, pd

    UnitObjective.__call__ = spy
    try:
        reconstruct(gm, list(x.split(32)), settings(iters=3), "cpu", progress=False, fp_model=model)
    finally:
        UnitObjective.__call__ = orig
    assert [s[0] for s in seen] == ["stem.0"] * 3 + ["body.0"] * 3 + ["body.1"] * 3 + ["head"] * 3
    for name, rec_leaves, pd_leaves, unit_params, trainable, alphas in seen:
        assert trainable == unit_params, name  # nothing outside the unit is trainable
        assert rec_leaves <= unit_params and pd_leaves <= unit_params, name  # the FP model's weights neither
        assert alphas <= pd_leaves, name  # the prediction difference reaches every layer of the unit
    assert not any(p.grad is not None for p in gm.parameters())
    assert not any(p.grad is not None for p in model.parameters())


def test_pdquant_lowers_unit_losses_and_output_error(trained):
    model, x = trained
    rtn = build_rtn(model, x)
    gm = build_rtn(model, x)
    report = reconstruct(gm, list(x.split(32)), settings(iters=300, weight_lr=1e-2, dc_iters=50), "cpu",
                         progress=False, fp_model=model)
    check_ready(gm)
    rows = report["per_unit"]
    assert sum(r["loss_after"] for r in rows) < 0.8 * sum(r["loss_before"] for r in rows)
    assert [r["unit"] for r in rows if "dc" in r] == ["body.0", "body.1"]  # blocks with BN only
    for r in rows:
        assert all(len(point) == 4 and point[3] >= 0 for point in r["curve"])  # the PD term is recorded
    with torch.no_grad():
        ref = model(x)
        assert (gm(x) - ref).pow(2).mean() < 0.5 * (rtn(x) - ref).pow(2).mean()


def test_ablations_switch_the_terms_off(trained):
    model, x = trained
    calls = {"dc": 0}
    orig_dc = engine.correct_distribution

    def count_dc(*args, **kw):
        calls["dc"] += 1
        return orig_dc(*args, **kw)

    engine.correct_distribution = count_dc
    try:
        for kw, want_dc in (({"pd_loss": False, "dc": False}, 0), ({"dc": False}, 0), ({}, 2 * 2)):
            calls.update(dc=0)
            gm = build_rtn(model, x)
            report = reconstruct(gm, list(x.split(32)), settings(iters=50, **kw), "cpu", progress=False,
                                 fp_model=model)
            # corrected inputs are computed once per block and calibration batch, not per iteration
            assert calls["dc"] == want_dc
            pd = [p[3] for r in report["per_unit"] for p in r["curve"]]
            assert all(v != v for v in pd) if kw.get("pd_loss") is False else all(v >= 0 for v in pd)
    finally:
        engine.correct_distribution = orig_dc


def test_drop_off_runs_one_batch_and_drop_on_two(trained):
    model, x = trained
    sizes = []
    orig = UnitObjective.__call__

    def spy(self, idx):
        sizes.append((self.twin, self.stage.drop_prob))
        return orig(self, idx)

    UnitObjective.__call__ = spy
    try:
        for drop in (0.5, 1.0):
            reconstruct(build_rtn(model, x), list(x.split(32)), settings(iters=2, drop_prob=drop, dc=False), "cpu",
                        progress=False, fp_model=model)
    finally:
        UnitObjective.__call__ = orig
    assert {s for s in sizes if s[1] == 0.5} == {(True, 0.5)} and {s for s in sizes if s[1] == 1.0} == {(False, 1.0)}


def test_temperature_changes_the_prediction_difference(trained):
    model, x = trained
    finals = {}
    for t in (1.0, 4.0):
        report = reconstruct(build_rtn(model, x), list(x.split(32)), settings(iters=1, dc=False, pd_temperature=t),
                             "cpu", progress=False, fp_model=model)
        finals[t] = report["per_unit"][0]["curve"][0][3]
    assert finals[1.0] > finals[4.0] > 0  # same first batch (seeded), softer distributions at T = 4


def test_pdquant_resumes_identically(trained, tmp_path):
    model, x = trained
    batches = list(x.split(32))
    full = build_rtn(model, x)
    reconstruct(full, batches, settings(), "cpu", progress=False, work_dir=str(tmp_path / "a"), fingerprint="k",
                fp_model=model)

    class Killed(Exception):
        pass

    with killed_after_units(2, Killed), pytest.raises(Killed):
        reconstruct(build_rtn(model, x), batches, settings(), "cpu", progress=False,
                    work_dir=str(tmp_path / "b"), fingerprint="k", fp_model=model)
    resumed = build_rtn(model, x)
    reconstruct(resumed, batches, settings(), "cpu", progress=False, work_dir=str(tmp_path / "b"), fingerprint="k",
                resume=True, fp_model=model)
    expected = full.state_dict()
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_activation_ranges_are_reinitialised_behind_the_quantized_prefix(trained):
    model, x = trained
    scales = {}
    for n in (0, 64):
        gm = build_rtn(model, x)
        item = next(it for it in Reconstructor(gm, [x], settings(dc=False), torch.device("cpu")).items
                    if it.unit is not None and it.unit.name == "body.1")
        acts = [a for a in unit_quantizers(item)[1] if a.enabled]
        before = [a.scale.detach().clone() for a in acts]
        orig = Reconstructor._optimise

        def grab(self, objective, *args, _n=n, _acts=acts):
            if objective.item.unit.name == "body.1":
                scales[_n] = [a.scale.detach().clone() for a in _acts]
            return orig(self, objective, *args)

        Reconstructor._optimise = grab
        try:
            reconstruct(gm, list(x.split(32)), settings(iters=2, dc=False, act_reinit_samples=n), "cpu",
                        progress=False, fp_model=model)
        finally:
            Reconstructor._optimise = orig
        scales[n] = (before, scales[n])
    assert all(torch.equal(a, b) for a, b in zip(*scales[0]))  # off: the calibrated ranges are kept
    assert any(not torch.equal(a, b) for a, b in zip(*scales[64]))  # on: set again behind the quantized prefix


# --- distribution correction ----------------------------------------------------------------------------
def test_bn_statistics_loss_is_zero_at_the_bn_statistics():
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
    z = torch.randn(4, 3, 8, 8)
    flat = z.flatten(2)
    z = (flat - flat.mean(2, keepdim=True)) / flat.std(2, keepdim=True)
    x = (z * (bn.running_var + bn.eps).sqrt().view(1, 3, 1) + bn.running_mean.view(1, 3, 1)).view(4, 3, 8, 8)
    assert float(bn_statistics_loss([x], [bn])) < 1e-8
    assert float(bn_statistics_loss([x + 1], [bn])) == pytest.approx(3.0, rel=1e-4)  # ‖Δμ‖² per sample
    with recording_inputs([bn]) as seen:
        bn(x)
        assert seen[0] is x


def dc_block():
    torch.manual_seed(0)
    block = Block(4).eval()
    for bn in (block.bn1, block.bn2):  # statistics the random input does not have
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
    return block, [block.bn1, block.bn2], torch.randn(8, 4, 6, 6)


def test_distribution_correction_moves_statistics_toward_the_bn_statistics():
    block, bns, x = dc_block()
    xt, out, rec = correct_distribution(block, bns, x, lambda_c=10.0, iters=200, lr=0.05)
    assert rec["bn_loss_after"] < 0.5 * rec["bn_loss_before"]
    with recording_inputs(bns) as seen, torch.no_grad():
        assert torch.equal(block(xt), out)  # the new target is the block's output on the corrected input
        assert float(bn_statistics_loss(seen, bns)) == pytest.approx(rec["bn_loss_after"], rel=1e-5)


def test_distribution_correction_stays_close_when_the_constraint_is_strong():
    """The objective is BN + Lp(X̃, X)/λ_c: a smaller λ_c is a stronger pull back to the input."""
    block, bns, x = dc_block()
    shifts = [correct_distribution(block, bns, x, lambda_c=c, iters=200, lr=0.05)[2]["shift"]
              for c in (10.0, 0.1, 1e-4)]
    assert shifts[0] > shifts[1] > shifts[2]
    assert shifts[2] < 1e-3 * shifts[0] and shifts[2] < 1e-3 * float(x.square().sum(1).mean())


def test_correction_needs_batchnorm_and_the_full_precision_model(trained):
    model, x = trained
    with pytest.raises(ConfigError, match="un-fused full-precision model"):
        reconstruct(build_rtn(model, x), list(x.split(32)), settings(), "cpu", progress=False)
    folded = BNNet().eval()
    for block in folded.body:  # as if BN were folded into the weights: no statistics left
        block.bn1 = block.bn2 = nn.Identity()
    with pytest.raises(ConfigError, match="no block of the full-precision model has a BatchNorm2d"):
        correction_module.correction_blocks(folded, ["body.0", "body.1"])


def test_the_tail_in_bf16_gives_nearly_the_same_prediction_difference(trained):
    model, x = trained
    first = {}
    for amp in ("off", "bf16"):
        report = reconstruct(build_rtn(model, x), list(x.split(32)), settings(iters=1, dc=False, pd_amp=amp), "cpu",
                             progress=False, fp_model=model)
        first[report["pd_tail_precision"]] = [r["curve"][0][3] for r in report["per_unit"]]
    assert set(first) == {"fp32", "bf16"}
    assert first["fp32"][0] > 0 and first["bf16"][0] == pytest.approx(first["fp32"][0], rel=0.05)
