"""The vision-transformer adapter: placement over timm's family, explicit attention, reparameterisation,
per-head ranges, multi-input units, invariants for every quantizer kind, resume through the CLI."""
import json
import os
import sys

import ptqvision  # noqa: F401  (before timm / torchvision)
import pytest
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer, WindowAttention
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.overrides import TorchFunctionMode

from ptqvision.errors import InvariantError, UnsupportedLayerError
from ptqvision.models import adapter_for
from ptqvision.models.schedule import Item, Schedule, Unit, run_items, unit_quantizers
from ptqvision.models.vit import ViTAdapter
from ptqvision.nn import QuantConfig, check_ready, placement
from ptqvision.nn.calibrate import quantization_off
from ptqvision.nn.ops import QuantMatMul, QuantSoftmax, quant_ops
from ptqvision.quant import AdaRoundQuantizer, Log2Quantizer, UniformQuantizer
from ptqvision.recon import reconstruct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import quant as quant_cli  # noqa: E402
from conftest import killed_after_units  # noqa: E402


def tiny_vit(**kw) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=5,
                             **kw).eval()


def tiny_swin() -> SwinTransformer:
    torch.manual_seed(0)
    # 16x16 tokens in windows of 4: the second block of a stage shifts its windows, so the mask add is used
    return SwinTransformer(img_size=64, patch_size=4, window_size=4, embed_dim=16, depths=(2, 2),
                           num_heads=(2, 4), num_classes=5).eval()


def qcfg(**kw) -> QuantConfig:
    return QuantConfig(**{"w_bits": 4, "a_bits": 4, "head_stem_8bit": False, "softmax": "uniform",
                          "ln_reparam": False, "w_observer": "minmax", "a_observer": "minmax", **kw})


def disabled(model: nn.Module):
    """Context: every quantizer off and weights raw (the twin in full precision)."""
    return quantization_off(model)


class _SeenFunctions(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("build", [tiny_vit, lambda: tiny_vit(class_token=True, reg_tokens=0), tiny_swin],
                         ids=["vit", "vit-cls", "swin"])
def test_every_attention_has_its_quantizers_and_no_sdpa_is_left(build):
    model = build()
    assert isinstance(adapter_for(model), ViTAdapter)
    twin = ViTAdapter().quantize(model, qcfg())
    attns = [m for m in twin.modules() if hasattr(m, "matmul_qk")]
    assert len(attns) == len([m for m in model.modules() if hasattr(m, "fused_attn")]) > 0
    for a in attns:
        assert set(a.matmul_qk.quantizers()) == {"q", "k"}
        assert set(a.softmax.quantizers()) == {"softmax"} and set(a.matmul_av.quantizers()) == {"v"}
        assert a.qkv.input_quantizer is not None and a.proj.input_quantizer is not None
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert sum(1 for _, op in quant_ops(twin) if op.weights()) == len(linears) + 1  # + the patch embedding
    assert twin.patch_embed.proj.input_quantizer.bits == 8
    x = torch.randn(2, 3, *twin.patch_embed.img_size)
    mode = _SeenFunctions()
    with disabled(twin), mode:
        twin(x)
    assert "scaled_dot_product_attention" not in mode.seen
    names = {r["name"] for r in placement(twin)}
    assert sum(n.endswith("matmul_qk.q_quantizer") for n in names) == len(attns)
    assert sum(n.endswith("softmax.quantizer") for n in names) == len(attns)


def test_swin_bias_and_mask_adds_get_no_quantizer_and_window_attention_is_no_unit():
    twin = ViTAdapter().quantize(tiny_swin(), qcfg())
    for m in twin.modules():
        if isinstance(m, WindowAttention):
            qs = {n for n, q in m.named_modules() if isinstance(q, UniformQuantizer)}
            assert qs == {"qkv.weight_quantizer", "qkv.input_quantizer", "proj.weight_quantizer",
                          "proj.input_quantizer", "matmul_qk.q_quantizer", "matmul_qk.k_quantizer",
                          "softmax.quantizer", "matmul_av.v_quantizer"}
    assert any(m.attn_mask is not None for m in twin.modules() if hasattr(m, "shift_size") and hasattr(m, "attn_mask"))
    units = ViTAdapter().schedule(twin, "block").units
    names = [u.name for u in units]
    assert names[0] == "patch_embed" and names[-1] == "head" and "layers.1.downsample" in names
    assert not any(n.endswith(".attn") for n in names)
    assert sum(u.kind == "block" for u in units) == 4
    fp_rows = {r["name"] for r in ViTAdapter().full_precision(twin)}
    assert "layers.0.blocks.1.attn.window_mask" in fp_rows and "layers.0.blocks.0.attn.relative_position_bias" in fp_rows


@pytest.mark.parametrize("build", [tiny_vit, tiny_swin], ids=["vit", "swin"])
def test_explicit_attention_and_its_schedules_keep_the_fp_output(build):
    model = build()
    twin = ViTAdapter().quantize(model, qcfg())
    x = torch.randn(3, 3, *twin.patch_embed.img_size)
    with torch.no_grad(), disabled(twin):
        ref = model(x)  # timm's fused attention
        out = twin(x)
        assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)  # tolerance: float reassociation of q·k·scale
        for mode in ("block", "sub_block"):
            s = ViTAdapter().schedule(twin, mode)
            assert torch.allclose(run_items(s.items, {"image": x}, s.output), out, atol=1e-6)


@pytest.mark.parametrize("build", [tiny_vit, tiny_swin], ids=["vit", "swin"])
def test_layernorm_reparameterisation_keeps_the_fp_output_and_fixes_per_tensor_ranges(build):
    model = build()
    with torch.no_grad():  # strong inter-channel variation after the LayerNorms, as in real ViTs
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.mul_(torch.logspace(-1, 1, m.weight.numel())[torch.randperm(m.weight.numel())])
                m.bias.add_(torch.randn_like(m.bias))
    twin = ViTAdapter().quantize(model, qcfg(ln_reparam=True))
    x = torch.randn(8, 3, *twin.patch_embed.img_size)
    record = ViTAdapter().calibrate(twin, [x], torch.device("cpu"), progress=False)
    assert len(record["ln_reparam"]) == len(twin.ptq_reparam_targets) > 0
    assert max(r["scale_ratio_range"][1] for r in record["ln_reparam"]) > 2  # the channels did differ
    with torch.no_grad(), disabled(twin):
        assert torch.allclose(twin(x), model(x), atol=1e-4, rtol=1e-4)  # tolerance: float64 fold, fp32 model
    path = twin.ptq_reparam_targets[0][1][0] + ".input_quantizer"
    scale, zp = twin.ptq_fixed_ranges[path]
    assert torch.equal(twin.get_submodule(path).scale.detach().reshape(()), scale.reshape(()).float())
    check_ready(twin)


def test_per_head_ranges_have_the_head_shape():
    twin = ViTAdapter().quantize(tiny_vit(), qcfg(attn_granularity="head"))
    ViTAdapter().calibrate(twin, [torch.randn(4, 3, 32, 32)], torch.device("cpu"), progress=False)
    a = twin.blocks[0].attn
    for q in (a.matmul_qk.q_quantizer, a.matmul_qk.k_quantizer, a.matmul_av.v_quantizer):
        assert q.granularity == "head" and q.scale.shape == (4,) and q.ch_axis == 1
    assert a.qkv.input_quantizer.scale.shape == (1,)
    rows = {r["name"]: r for r in placement(twin)}
    assert rows["blocks.0.attn.matmul_qk.k_quantizer"]["granularity"] == "head"


def test_an_op_outside_the_rules_is_an_error_not_silently_fp():
    class OwnAttention(nn.Module):  # not timm's Attention: its SDPA has no quantized counterpart
        def __init__(self, dim):
            super().__init__()
            self.qkv = nn.Linear(dim, dim * 3)

        def forward(self, x, **_):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return F.scaled_dot_product_attention(q, k, v)

    model = tiny_vit()
    model.blocks[0].attn = OwnAttention(32)
    with pytest.raises(UnsupportedLayerError, match="scaled_dot_product_attention in blocks.0.attn"):
        ViTAdapter().quantize(model, qcfg())


class TwoInputUnit(nn.Module):
    """Tokens attend to an image's pixels: two inputs of different shapes."""

    def __init__(self):
        super().__init__()
        from ptqvision.nn import QuantLinear
        self.q = QuantLinear.from_float(nn.Linear(6, 6), UniformQuantizer(4, 6, 0, observer="minmax"))
        self.q.input_quantizer = UniformQuantizer(4, observer="minmax")
        self.mm = QuantMatMul(UniformQuantizer(4, observer="minmax"), UniformQuantizer(4, observer="minmax"), "t", "p")
        self.sm = QuantSoftmax(Log2Quantizer(4, mode="agq"))
        self.av = QuantMatMul(None, UniformQuantizer(4, observer="minmax"), "A", "v")

    def forward(self, tokens, pixels):
        t = self.q(tokens)                       # (B, 5, 6)
        p = pixels.flatten(2).transpose(1, 2)    # (B, 16, 6)
        attn = self.sm(self.mm(t, p.transpose(1, 2)), p)
        return t + self.av(attn, p)


def test_units_with_several_inputs_of_different_shapes_capture_and_replay():
    torch.manual_seed(0)
    unit = TwoInputUnit()
    head = nn.Linear(6, 3)
    model = nn.ModuleDict({"unit": unit, "head": head})
    schedule = Schedule([Item(unit, ["tokens", "pixels"], ["y"], Unit("unit", "block")),
                         Item(head, ["y"], ["out"], None)], ["tokens", "pixels"], "out")
    batches = [(torch.randn(8, 5, 6), torch.randn(8, 6, 4, 4)) for _ in range(3)]
    from ptqvision.nn import calibrate
    calibrate(model, batches, progress=False, forward=lambda m, b: run_items(schedule.items, dict(zip(schedule.inputs, b)),
                                                                             schedule.output))
    layers, acts = unit_quantizers(schedule.items[0])
    assert layers == [unit.q] and len(acts) == 5 and any(isinstance(a, Log2Quantizer) for a in acts)
    from ptqvision.recon import lp_loss
    with torch.no_grad():  # the unit's RTN loss computed directly: the engine must replay exactly these inputs
        quantized = [unit(*b) for b in batches]
        with disabled(model):
            target = [unit(*b) for b in batches]
        expected = sum(float(lp_loss(a, t, 2.0)) for a, t in zip(quantized, target)) / len(batches)
    report = reconstruct(model, batches, dict(partition="block", skip_first_layer=False, joint=True, drop_prob=0.5,
                                              iters=60, weight_lr=1e-2), "cpu", progress=False, schedule=schedule)
    rec = report["per_unit"][0]
    assert rec["unit"] == "unit" and rec["loss_before"] == pytest.approx(expected, rel=1e-5)
    assert rec["loss_after"] == rec["loss_after"] and rec["iters"] == 60
    check_ready(model)
    assert isinstance(unit.sm.quantizer, Log2Quantizer) and unit.sm.quantizer.scale.requires_grad is False


def test_evaluation_invariants_hold_for_every_quantizer_kind():
    twin = ViTAdapter().quantize(tiny_vit(), qcfg(softmax="agq", attn_granularity="head"))
    with pytest.raises(InvariantError, match="not calibrated"):
        check_ready(twin)
    x = torch.randn(16, 3, 32, 32)
    ViTAdapter().calibrate(twin, [x], torch.device("cpu"), progress=False)
    check_ready(twin)
    report = reconstruct(twin, [x[:8], x[8:]], dict(partition="sub_block", skip_first_layer=False, joint=True,
                                                    drop_prob=0.5, iters=4), "cpu", progress=False)
    assert report["units"] == 2 * 2 + 2
    check_ready(twin)  # every drop back to 1, rounding hard, steps frozen, for uniform and log2 alike
    log2 = twin.blocks[0].attn.softmax.quantizer
    assert isinstance(log2, Log2Quantizer) and log2.chosen_tau in (1, 2, 4)
    log2.drop_prob = 0.5
    with pytest.raises(InvariantError, match="drop probability"):
        check_ready(twin)
    log2.drop_prob = 1.0
    op = twin.blocks[1].mlp.fc1
    op.set_quantizer("weight", AdaRoundQuantizer(op.weight_quantizer, op.weight))
    with pytest.raises(InvariantError, match="soft"):
        check_ready(twin)


def test_vit_run_killed_half_way_resumes_to_the_same_numbers(tmp_path, capsys):
    cfg = os.path.join(ROOT, "configs", "demo", "vit_mnist_qdrop_w4a4.py")
    opts = ["--cfg-options", "calib.num_samples=32", "recon.iters=3", "data.val.rows=[1,5000,25]", "eval.progress=False",
            "quant.softmax=agq", "quant.attn_granularity=head"]
    cwd = os.getcwd()
    os.chdir(ROOT)  # the demo config's paths are relative to the repository
    try:
        work = tmp_path / "work"
        assert quant_cli.main([cfg, "--work-dir", str(work)] + opts) == 0
        results = json.loads((work / "results.json").read_text())
        assert results["adapter"] == "vit" and results["reconstruction"]["units"] == 8
        assert {r["type"] for r in results["placement"]} == {"uniform", "log2"}
        assert any(r["what"] == "LayerNorm" for r in results["full_precision"])
        killed = tmp_path / "killed"
        with killed_after_units(4):
            assert quant_cli.main([cfg, "--work-dir", str(killed)] + opts) == 130
        assert quant_cli.main([cfg, "--work-dir", str(killed), "--resume"] + opts) == 0
        assert "continues at stage 0, unit 4" in (killed / "run.log").read_text()
        assert json.loads((killed / "results.json").read_text())["metrics"] == results["metrics"]
        a = torch.load(work / "quantized.pth", weights_only=True)["state_dict"]
        b = torch.load(killed / "quantized.pth", weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    finally:
        os.chdir(cwd)


def test_repqvit_checkpoint_reproduces_exactly_through_test_py(tmp_path, capsys):
    import test as test_cli

    cfg = os.path.join(ROOT, "configs", "demo", "vit_mnist_repqvit_w4a4.py")
    opts = ["--cfg-options", "data.val.rows=[1,5000,10]", "eval.progress=False", "quant.a_bits=3"]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        work = tmp_path / "work"
        assert quant_cli.main([cfg, "--work-dir", str(work)] + opts) == 0
        results = json.loads((work / "results.json").read_text())
        assert results["quant"]["ln_reparam"] is True and results["quant"]["softmax"] == "log_sqrt2"
        assert len(results["calibration"]["ln_reparam"]) == 12 and "MNIST toy" in results["note"]
        assert any("reparameterised" in r["what"] for r in results["full_precision"])
        capsys.readouterr()
        assert test_cli.main([cfg, str(work / "quantized.pth")] + opts) == 0
        assert "reproduced exactly" in capsys.readouterr().out
    finally:
        os.chdir(cwd)
