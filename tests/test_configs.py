"""Every shipped config resolves, and the reconstruction configs carry the papers' settings."""
import glob
import os
import re

import pytest

from ptqvision.config import load_config
from ptqvision.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)
                 if "_base_" not in p)
LAMBDA = {"mobilenet_v2": 0.1, "mnasnet2_0": 0.2, "resnet18": 0.01, "resnet50": 0.01, "regnet_x_600mf": 0.01,
          "regnet_x_3_2gf": 0.01}
# PD-Quant's published (T, lambda_c) per architecture
PDQUANT = {"resnet18": (4, 0.02), "resnet50": (4, 0.02), "mobilenet_v2": (1, 0.005), "regnet_x_600mf": (4, 0.01),
           "regnet_x_3_2gf": (4, 0.01), "mnasnet2_0": (1, 0.001)}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_resolves(path):
    cfg, _ = load_config(path)
    method = cfg["method"]["type"]
    folder = os.path.basename(os.path.dirname(path))
    if folder in ("adaround", "brecq", "qdrop", "pdquant"):
        assert method == folder
        stem = os.path.basename(path)[:-3]
        model, bits = stem.rsplit("_", 1)
        assert bits == f"w{cfg['quant']['w_bits']}a{cfg['quant']['a_bits']}"
        if model in LAMBDA:  # the published tables' protocol
            assert cfg["recon"]["round_lambda"] == LAMBDA[model]
            assert (cfg["calib"]["num_samples"], cfg["calib"]["seed"], cfg["recon"]["batch_size"],
                    cfg["recon"]["iters"]) == (1024, 1005, 32, 20000)
        expected = {"adaround": ("layer", False, False, 1.0), "brecq": ("block", True, False, 1.0),
                    "qdrop": ("block", False, True, 0.5), "pdquant": ("block", False, True, 0.5)}[method]
        r = cfg["recon"]
        assert (r["partition"], r["skip_first_layer"], r["joint"], r["drop_prob"]) == expected
        assert cfg["quant"]["stem_output_8bit"] is (method == "brecq")  # BRECQ keeps the stem output at 8 bit
        assert (r["pd_loss"], r["act_reinit_samples"]) == ((True, 256) if method == "pdquant" else (False, 0))
        if method == "pdquant":
            assert (r["weight_lr"], r["pd_lambda"]) == (3e-3, 0.1)
            if model in PDQUANT:
                assert (r["pd_temperature"], r["dc_lambda"], r["dc"]) == (*PDQUANT[model], True)
        else:
            assert r["dc"] is False


def test_the_table_is_complete():
    for method, cells in (("adaround", "w4a4 w2a4 w3a3 w2a2"), ("brecq", "w4a4 w2a4 w3a3 w2a2"),
                          ("qdrop", "w4a4 w2a4 w3a3 w2a2"), ("pdquant", "w4a4 w2a4 w4a2 w2a2")):
        for model in LAMBDA:
            for bits in cells.split():
                assert os.path.isfile(os.path.join(ROOT, "configs", method, f"{model}_{bits}.py"))


def test_ptq4sam_configs_carry_the_papers_protocol():
    """configs/ptq4sam: SAM-B/L/H x W4A4/W6A6 x the four detectors x ptq4sam, QDrop and RTN."""
    protocol = {"faster_rcnn": (0.05, 100), "yolox": (0.05, None), "hdetr": (0.0, 100), "dino": (0.0, 300)}
    for size in "blh":
        for det, (thr, cap) in protocol.items():
            for bits in (4, 6):
                for suffix, method in (("", "ptq4sam"), ("_qdrop", "qdrop"), ("_rtn", "rtn")):
                    cfg, _ = load_config(os.path.join(ROOT, "configs", "ptq4sam", f"sam_vit_{size}_{det}_w{bits}a{bits}{suffix}.py"))
                    assert (cfg["model"]["name"], cfg["method"]["type"]) == (f"sam_vit_{size}", method)
                    assert (cfg["quant"]["w_bits"], cfg["quant"]["a_bits"]) == (bits, bits)
                    assert (cfg["task"]["score_thr"], cfg["task"]["max_per_image"]) == (thr, cap)
                    assert cfg["task"]["max_dets"] == [1, 10, 100] and cfg["calib"]["num_samples"] == 32
                    assert (cfg["quant"]["softmax"], cfg["quant"]["bimodal_integration"]) == \
                        (("agq", True) if method == "ptq4sam" else ("uniform", False))
                    if method != "rtn":
                        r = cfg["recon"]
                        assert (r["partition"], r["batch_size"], r["iters"], r["drop_prob"], r["joint"]) == \
                            ("sub_block", 1, 20000, 0.5, True)
                        assert (r["round_lambda"], r["act_lr"]) == (0.01, 4e-5)


def test_a_config_may_leave_out_whole_sections(tmp_path):
    path = tmp_path / "minimal.py"
    path.write_text("model = dict(type='torchvision', name='resnet18', weights='random')\n")
    cfg, _ = load_config(str(path))
    assert cfg["quant"]["overrides"] == [] and cfg["model"]["kwargs"] == {} and cfg["task"]["type"] == "classification"


@pytest.mark.parametrize("method", ["qdrop", "pdquant"])
def test_original_range_init_is_one_switch(method):
    path = os.path.join(ROOT, "configs", method, "mobilenet_v2_folded_w4a4.py")
    default, _ = load_config(path)
    assert default["method"]["range_init"] == "default"
    assert (default["quant"]["w_observer"], default["quant"]["a_observer"]) == ("lp", "lp")
    assert default["recon"]["act_reinit_samples"] == (256 if method == "pdquant" else 0)
    cfg, _ = load_config(path, ["method.range_init=original"])
    assert (cfg["quant"]["w_observer"], cfg["quant"]["a_observer"]) == ("qdrop_mse", "qdrop_mse")
    assert cfg["recon"]["act_reinit_samples"] == 256
    changed = {(s, k) for s in ("quant", "recon") for k in cfg[s] if cfg[s][k] != default[s][k]}
    assert changed <= {("quant", "w_observer"), ("quant", "a_observer"), ("recon", "act_reinit_samples")}


@pytest.mark.parametrize("options,message", [
    (["method.range_init=paper"], "method.range_init must be one of ('default', 'original'), got 'paper'"),
    (["method.type=brecq", "method.range_init=original"], "method.range_init='original' is defined for method.type"),
    (["method.range_init=original", "quant.w_observer=minmax"], "quant.w_observer='minmax' contradicts"),
    (["method.range_init=original", "recon.act_reinit_samples=64"], "recon.act_reinit_samples=64 contradicts"),
])
def test_bad_range_init_is_a_config_error(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(os.path.join(ROOT, "configs", "qdrop", "mobilenet_v2_folded_w4a4.py"), options)
