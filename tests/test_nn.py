"""Quantized twin: BN folding, placement rules, calibration, RTN quality, checkpoints, unsupported layers."""
import copy

import pytest
import torch
import torchvision
from torch import nn

from ptqvision.checkpoint import load_into, load_quantized, save_quantized
from ptqvision.errors import CheckpointError, InvariantError, UnsupportedLayerError
from ptqvision.nn import (QuantConv2d, activation_quantizers, calibrate, check_ready, fold_bn_into_conv,
                          iter_quantizers, placement, quantize, unquantized_inputs)


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _disable(model):
    for _, q in iter_quantizers(model):
        q.enabled = False
    return model


class TinyResNet(nn.Module):
    """A stem, one basic residual block with a downsample conv, a plain conv and a classifier."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16))
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.stem(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + self.down(x))
        out = torch.relu(self.conv3(out))
        return self.fc(torch.flatten(self.pool(out), 1))


def test_bn_folding_is_exact_on_a_conv():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, bias=False), _randomise_bn(nn.Sequential(nn.BatchNorm2d(6)))[0]
    x = torch.randn(2, 4, 9, 9)
    ref = bn(conv(x))
    fold_bn_into_conv(conv, bn)
    assert torch.allclose(conv(x), ref, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_twin_with_quantizers_off_reproduces_fp_output(name):
    torch.manual_seed(0)
    model = _randomise_bn(getattr(torchvision.models, name)())
    twin = _disable(quantize(model, {"w_bits": 4, "a_bits": 4}))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in twin.modules())  # all folded
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, out = model(x), twin(x)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def _counts(rows):
    w = [r for r in rows if r["kind"] == "weight"]
    a = [r for r in rows if r["kind"] == "act"]
    return w, a


def test_placement_resnet18_matches_brecq_qdrop_protocol():
    rows = placement(quantize(torchvision.models.resnet18(), {"w_bits": 4, "a_bits": 4}))
    w, a = _counts(rows)
    # 21 weights: stem, 16 block convs, 3 downsample convs, fc
    assert len(w) == 21
    # 17 activations: stem output, then per block the conv1 output and the block output (add+ReLU);
    # never the conv before the add, the downsample conv, or the logits
    assert len(a) == 17
    names = {r["name"] for r in a}
    assert "conv1.output_quantizer" in names and "layer1.0.out_quantizer" in names
    assert not any(n.endswith(("conv2.output_quantizer", "downsample.0.output_quantizer")) for n in names)
    assert not any(n.startswith("fc.") for n in names)
    eight = sorted(r["name"] for r in rows if r["bits"] == 8)
    assert eight == ["conv1.weight_quantizer", "fc.weight_quantizer", "layer4.1.out_quantizer"]
    assert all(r["bits"] == 4 for r in rows if r["name"] not in eight)
    assert all(r["granularity"] == ("channel" if r["kind"] == "weight" else "tensor") for r in rows)


def test_placement_mobilenet_v2_matches_brecq_qdrop_protocol():
    rows = placement(quantize(torchvision.models.mobilenet_v2(), {"w_bits": 4, "a_bits": 4}))
    w, a = _counts(rows)
    assert len(w) == 53  # stem, 2 + 16*3 block convs, last 1x1, classifier
    # stem; block 1: depthwise + project; blocks 2-17: expand + depthwise + (add output or project output);
    # last 1x1 conv
    assert len(a) == 52
    residual = [r["name"] for r in a if r["name"].endswith(".out_quantizer")]
    assert len(residual) == 10  # the 10 inverted residuals with a skip connection
    eight = sorted(r["name"] for r in rows if r["bits"] == 8)
    assert eight == ["classifier.1.weight_quantizer", "features.0.0.weight_quantizer",
                     "features.18.0.output_quantizer"]
    # without residual-output quantization the skip path stays in full precision, but the conv that
    # reads an add's output still quantizes its input: every layer sees quantized activations
    no_res = _counts(placement(quantize(torchvision.models.mobilenet_v2(), {"quantize_residual_output": False})))[1]
    assert not any(r["name"].endswith(".out_quantizer") for r in no_res)
    inputs = [r["name"] for r in no_res if r["name"].endswith("input_quantizer")]
    assert len(inputs) == 10 and all(n.endswith(".conv.0.0.input_quantizer") for n in inputs)


def test_bit_options_head_stem_and_overrides():
    model = TinyResNet()
    rows = {r["name"]: r["bits"] for r in placement(quantize(model, {"w_bits": 3, "a_bits": 5,
                                                                       "head_stem_8bit": False}))}
    assert set(rows.values()) == {3, 5}
    rows = {r["name"]: r["bits"] for r in placement(quantize(model, {
        "w_bits": 3, "a_bits": 5, "stem_output_8bit": True,
        "overrides": [{"pattern": "conv3", "w_bits": 6, "a_bits": 7}]}))}
    assert rows["stem.0.output_quantizer"] == 8 and rows["stem.0.weight_quantizer"] == 8
    assert rows["conv3.weight_quantizer"] == 6 and rows["conv3.output_quantizer"] == 7
    assert rows["conv1.weight_quantizer"] == 3 and rows["out_quantizer"] == 5
    assert rows["fc.weight_quantizer"] == 8


def test_functional_activation_is_fused_and_quantized_after_it():
    twin = quantize(TinyResNet(), {})
    conv3 = twin.get_submodule("conv3")
    assert isinstance(conv3, QuantConv2d) and isinstance(conv3.act, nn.ReLU)
    assert conv3.output_quantizer is not None
    assert twin.get_submodule("conv2").output_quantizer is None  # feeds the residual add


def _calib_batches(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, 16, 16, generator=g) for _ in range(n)]


def _agreement(model, twin, x):
    with torch.no_grad():
        ref, out = model(x), twin(x)
    rel = ((out - ref).norm() / ref.norm()).item()
    return rel, (out.argmax(1) == ref.argmax(1)).float().mean().item()


def test_w8a8_close_to_fp_w2a2_is_not():
    torch.manual_seed(0)
    model = _randomise_bn(TinyResNet())
    nn.init.zeros_(model.fc.bias)  # logits driven by the input, so the top-1 agreement means something
    x = torch.randn(256, 3, 16, 16)
    result = {}
    for bits in (8, 2):
        twin = quantize(model, {"w_bits": bits, "a_bits": bits, "head_stem_8bit": False})
        calibrate(twin, _calib_batches(), progress=False)
        check_ready(twin)
        result[bits] = _agreement(model, twin, x)
    assert result[8][0] < 0.03 and result[8][1] > 0.95, result
    assert result[2][0] > 0.3 and result[2][1] < 0.7, result


def test_calibration_sets_every_quantizer_and_check_ready_catches_problems():
    twin = quantize(TinyResNet(), {})
    with pytest.raises(InvariantError, match="not calibrated"):
        check_ready(twin)
    calibrate(twin, _calib_batches(), progress=False)
    check_ready(twin)
    acts = activation_quantizers(twin)
    acts[0].drop_prob = 0.5
    with pytest.raises(InvariantError, match="drop probability"):
        check_ready(twin)
    acts[0].drop_prob = 1.0
    acts[1].start_observing()
    with pytest.raises(InvariantError, match="observer still active"):
        check_ready(twin)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = _randomise_bn(TinyResNet())
    twin = quantize(model, {"w_bits": 4, "a_bits": 4})
    calibrate(twin, _calib_batches(), progress=False)
    path = str(tmp_path / "q.pth")
    save_quantized(path, twin, {"note": "test"})
    payload = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert payload["meta"]["note"] == "test"
    # weights are stored hard-quantized: on their grid
    w, s = payload["state_dict"]["conv1.weight"], payload["state_dict"]["conv1.weight_quantizer.scale"]
    z = payload["state_dict"]["conv1.weight_quantizer.zero_point"]
    codes = w / s.view(-1, 1, 1, 1) + z.view(-1, 1, 1, 1)
    assert torch.allclose(codes, codes.round(), atol=1e-3) and not torch.equal(w, twin.conv1.weight)
    torch.manual_seed(123)  # a differently initialised model: everything must come from the checkpoint
    rebuilt = quantize(_randomise_bn(TinyResNet(), seed=5), {"w_bits": 4, "a_bits": 4})
    load_into(rebuilt, load_quantized(path), path)
    check_ready(rebuilt)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(twin(x), rebuilt(x))


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_quantized(str(bad))
    with pytest.raises(CheckpointError, match="not found"):
        load_quantized(str(tmp_path / "missing.pth"))
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.ones(1)}, other)
    with pytest.raises(CheckpointError, match="not a ptqvision"):
        load_quantized(str(other))
    twin = quantize(TinyResNet(), {"w_bits": 4, "a_bits": 4})
    calibrate(twin, _calib_batches(), progress=False)
    path = str(tmp_path / "q.pth")
    save_quantized(path, twin, {})
    wider = quantize(TinyResNet(num_classes=7), {"w_bits": 4, "a_bits": 4})
    with pytest.raises(CheckpointError, match="does not match"):
        load_into(wider, load_quantized(path), path)


@pytest.mark.parametrize("layer,type_name", [(nn.Conv1d(3, 3, 1), "Conv1d"),
                                             (nn.ConvTranspose2d(3, 3, 1), "ConvTranspose2d")])
def test_unsupported_layer_names_type_and_place(layer, type_name):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.odd = layer

        def forward(self, x):
            return self.odd(self.conv(x))

    with pytest.raises(UnsupportedLayerError, match=f"{type_name} at 'odd'"):
        quantize(Net())


def test_quantize_leaves_the_original_model_untouched():
    model = _randomise_bn(TinyResNet())
    before = copy.deepcopy(model.state_dict())
    quantize(model, {})
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("kind,name", [("torchvision", "resnet50"), ("torchvision", "regnet_x_600mf"),
                                       ("torchvision", "regnet_x_3_2gf"), ("torchvision", "mnasnet1_0"),
                                       ("timm", "efficientnet_b0"), ("timm", "mobilenetv3_large_100"),
                                       ("timm", "tf_efficientnet_lite0")])
def test_model_zoo_twins_are_exact_with_quantizers_off_and_run_quantized(kind, name):
    from ptqvision.models import build_model

    model, _ = build_model({"type": kind, "name": name, "weights": "random"})
    model = _randomise_bn(model)
    twin = quantize(model, {"w_bits": 4, "a_bits": 4})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, off = model(x), _disable(copy.deepcopy(twin))(x)
    assert torch.allclose(off, ref, atol=1e-4, rtol=1e-3)
    assert unquantized_inputs(twin) == []
    calibrate(twin, [x], progress=False)
    check_ready(twin)
    with torch.no_grad():
        out = twin(x)
    assert out.shape == ref.shape and torch.isfinite(out).all() and not torch.equal(out, ref)


@pytest.mark.parametrize("kind,name,expected_inputs", [
    ("torchvision", "efficientnet_b0", 16),   # the squeeze-excitation product feeds each projection conv
    ("torchvision", "densenet121", 62),       # an unfolded BN+ReLU feeds every dense layer's first conv
    ("timm", "convnext_atto", 17),            # a LayerNorm feeds the depthwise conv / first MLP linear
])
def test_every_layer_input_is_quantized_even_after_unquantized_ops(kind, name, expected_inputs):
    from ptqvision.models import build_model

    twin = quantize(build_model({"type": kind, "name": name, "weights": "random"})[0], {})
    assert unquantized_inputs(twin) == []
    assert sum(r["name"].endswith("input_quantizer") for r in placement(twin)) == expected_inputs


def test_identity_between_conv_and_activation_does_not_block_fusion():
    from ptqvision.models import build_model

    twin = quantize(build_model({"type": "timm", "name": "resnet18", "weights": "random"})[0], {})
    conv1 = twin.get_submodule("layer1.0.conv1")  # timm puts drop_block (Identity) before act1
    assert isinstance(conv1.act, nn.ReLU) and not conv1.act.inplace and conv1.output_quantizer is not None
    assert not any(isinstance(m, nn.Identity) for m in twin.modules())


def test_timm_conv1d_attention_is_refused_with_its_place():
    from ptqvision.models import build_model

    model, _ = build_model({"type": "timm", "name": "ecaresnet26t", "weights": "random"})
    with pytest.raises(UnsupportedLayerError, match="Conv1d at 'layer1.0.se.conv'"):
        quantize(model)


def test_calibration_is_deterministic():
    model = _randomise_bn(TinyResNet())
    scales = []
    for _ in range(2):
        twin = quantize(model, {"w_bits": 4, "a_bits": 4})
        calibrate(twin, _calib_batches(), progress=False)
        scales.append(torch.cat([q.scale.detach().flatten() for _, q in iter_quantizers(twin)]))
    assert torch.equal(scales[0], scales[1])
