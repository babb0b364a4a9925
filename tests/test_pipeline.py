"""End to end: tools/quant.py and tools/test.py on a tiny generated dataset, resume, and bad input."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from ptqvision.models import register_model
from ptqvision.models.registry import imagenet_preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import quant as quant_cli  # noqa: E402
import test as test_cli  # noqa: E402
from conftest import killed_after_units, write_tiny_config as write_config  # noqa: E402


class ConvWithConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.mix = nn.Conv1d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x).flatten(2)
        return self.mix(y).mean(-1)


@register_model("test_conv1d_net")
def _build_conv1d(cfg):
    return ConvWithConv1d(), imagenet_preprocess(resize=36, crop=32)


@pytest.fixture(scope="module")
def dataset(tiny_images):
    return tiny_images


def test_quant_then_test_reproduces_exactly_and_resume(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny_rtn.py", dataset)
    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "rtn" in out and "4/4" in out
    results = json.loads((work / "results.json").read_text())
    for key in ("config", "model", "method", "w_bits", "a_bits", "metrics", "calib", "time_s", "device",
                "versions", "host"):
        assert key in results
    assert results["host"]["threads"] == torch.get_num_threads() and results["host"]["cpu_capability"]
    assert set(results["metrics"]) == {"fp", "quant"}
    assert set(results["time_s"]) == {"calibration", "reconstruction", "evaluation", "total"}
    assert results["calib"]["num_samples"] == 8 and results["calib"]["seed"] == 3
    assert len(results["calib"]["sha256"]) == 64
    assert results["quant"]["quantize_residual_output"] is True and results["placement"]
    assert results["preprocess"]["crop"] == 32
    assert (work / "config.py").is_file() and "calibrated" in (work / "run.log").read_text()
    payload = torch.load(work / "quantized.pth", weights_only=True)
    assert payload["format"] == "ptqvision.quantized"

    assert test_cli.main([cfg, str(work / "quantized.pth")]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly" in out
    assert json.loads(out.splitlines()[0])["top1"] == results["metrics"]["quant"]["top1"]

    # resume: nothing recomputed, same numbers
    assert quant_cli.main([cfg, "--work-dir", str(work), "--resume"]) == 0
    resumed = json.loads((work / "results.json").read_text())
    assert resumed["metrics"] == results["metrics"]
    assert resumed["time_s"]["calibration"] == 0.0
    log = (work / "run.log").read_text()
    assert "resume: quantized model" in log and "resume: full-precision metrics" in log

    # a different setting is not mistaken for the finished run
    assert quant_cli.main([cfg, "--work-dir", str(work), "--resume", "--cfg-options", "quant.a_bits=8"]) == 0
    assert json.loads((work / "results.json").read_text())["a_bits"] == 8


def test_dry_run_prints_placement_without_work(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny_rtn.py", dataset)
    work = tmp_path / "dry"
    assert quant_cli.main([cfg, "--work-dir", str(work), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0.out_quantizer" in out and "38 quantizers: 21 weight, 17 activation" in out
    assert not work.exists()


BAD_INPUTS = [
    (["--cfg-options", "quant.wbits=4"], "unknown config key 'quant.wbits'; did you mean 'quant.w_bits'?"),
    (["--cfg-options", "data.val.root=/nonexistent/val"], "/nonexistent/val"),
    (["--cfg-options", "model.weights=/nonexistent/w.pth"], "checkpoint not found: /nonexistent/w.pth"),
    (["--cfg-options", "quant.w_bits=9"], "quant.w_bits must be an integer in 2..8"),
    (["--cfg-options", "quant.a_bits=1"], "quant.a_bits must be an integer in 2..8"),
    (["--cfg-options", "model.type=test_conv1d_net"], "layer type Conv1d at 'mix' has no quantized counterpart"),
    (["--cfg-options", "quant.overrides=abc"], "quant.overrides must be a list of dicts"),
    (["--cfg-options", "quant.overrides=[1]"], "quant.overrides[0] must be a dict with a string 'pattern'"),
    (["--cfg-options", "quant.overrides=[dict(pattern='nomatch*', w_bits=8)]"], "matches no layer or quantizer"),
    (["--cfg-options", "quant.overrides=[dict(pattern='fc', w_bits=1)]"], "quant.overrides[0].w_bits must be"),
    (["--cfg-options", "seed=abc"], "seed must be a non-negative integer"),
    (["--cfg-options", "calib.seed=abc"], "calib.seed must be a non-negative integer"),
    (["--cfg-options", "quant.lp_p=-1"], "quant.lp_p must be a positive number"),
    (["--cfg-options", "method.range_init=original"], "method.range_init='original' is defined for method.type"),
    (["--cfg-options", "quant.w_symmetric=maybe"], "quant.w_symmetric must be true or false"),
    (["--cfg-options", "eval.progress=maybe"], "eval.progress must be true or false"),
    (["--cfg-options", "calib.num_samples=1000"], "num_samples"),
    (["--cfg-options", "model.num_classes=2"], "label 3 is out of range for a model with 2 classes"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--cfg-options", "device=cuda:99"], "cuda"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_gives_one_line_error(tmp_path, dataset, capsys, args, message):
    cfg = write_config(tmp_path / "tiny_rtn.py", dataset)
    code = quant_cli.main([cfg, "--work-dir", str(tmp_path / "w")] + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "w" / "results.json").exists()


def test_overrides_in_config_file_syntax_from_the_command_line(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny.py", dataset)
    assert quant_cli.main([cfg, "--dry-run", "--cfg-options",
                           "quant.overrides=[dict(pattern='layer4.*', w_bits=6, a_bits=7)]"]) == 0
    rows = {line.split()[0]: int(line.split()[2]) for line in capsys.readouterr().out.splitlines()
            if "_quantizer " in line}
    assert rows["layer4.0.conv1.weight_quantizer"] == 6 and rows["layer4.0.conv1.output_quantizer"] == 7
    assert rows["layer3.0.conv1.weight_quantizer"] == 4


def test_fresh_run_archives_the_previous_one_and_checkpoint_refuses_other_bits(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny.py", dataset)
    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work), "--cfg-options", "quant.w_bits=3"]) == 0
    first = json.loads((work / "results.json").read_text())
    assert quant_cli.main([cfg, "--work-dir", str(work), "--cfg-options", "eval.fp=False"]) == 0
    assert json.loads((work / "previous" / "results.json").read_text()) == first
    assert "fp" not in json.loads((work / "results.json").read_text())["metrics"]
    assert oct((work / "results.json").stat().st_mode & 0o777) != oct(0o600)
    capsys.readouterr()
    # the checkpoint is W4A4; rebuilding it from a W8 config must fail loudly, not evaluate something else
    assert test_cli.main([cfg, str(work / "quantized.pth"), "--cfg-options", "quant.w_bits=8"]) == 2
    err = capsys.readouterr().err
    assert "was made with another placement" in err and "bits 8 (checkpoint: 4)" in err


def test_worker_wrapped_error_prints_only_its_message():
    from _cli import one_line
    from ptqvision.errors import DataError

    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\nptqvision.errors.DataError: cannot decode image /a.png")
    assert one_line(wrapped) == "cannot decode image /a.png"
    assert one_line(DataError("plain")) == "plain"


def test_corrupt_checkpoints_give_one_line_errors(tmp_path, dataset, capsys):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(os.urandom(256))
    cfg = write_config(tmp_path / "tiny_rtn.py", dataset)
    assert quant_cli.main([cfg, "--cfg-options", f"model.weights={bad}"]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err
    assert test_cli.main([cfg, str(bad)]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err


def test_missing_config_and_subprocess_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "quant.py"), str(tmp_path / "nope.py")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: config file not found: {tmp_path / 'nope.py'}"
    assert "Traceback" not in proc.stderr


def test_private_config_variables_are_allowed_and_unknown_top_level_keys_are_not(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny.py", dataset)
    with open(cfg, "a") as f:
        f.write("_bits = 6\nquant = dict(w_bits=_bits, a_bits=_bits)\n")
    assert quant_cli.main([cfg, "--dry-run"]) == 0
    assert "     6  channel" in capsys.readouterr().out
    with open(cfg, "a") as f:
        f.write("iters = 5\n")
    assert quant_cli.main([cfg, "--dry-run"]) == 2
    assert "unknown config key 'iters'" in capsys.readouterr().err


def test_allocator_tuning_can_be_switched_off(monkeypatch):
    from ptqvision.utils.runtime import tune_cpu_allocator

    monkeypatch.setenv("PTQVISION_MALLOC_TUNING", "0")
    assert tune_cpu_allocator() is False
    monkeypatch.delenv("PTQVISION_MALLOC_TUNING")
    if sys.platform.startswith("linux"):
        assert tune_cpu_allocator() is True  # glibc accepts the thresholds


def test_qdrop_through_the_cli_records_everything_and_resumes_after_a_kill(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny_qdrop.py", dataset, method=dict(type="qdrop"),
                       recon=dict(iters=6, batch_size=4, round_lambda=0.1))
    assert quant_cli.main([cfg, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "reconstruction units (qdrop)" in out and "10 units: 8 blocks, 2 layers" in out

    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work)]) == 0
    results = json.loads((work / "results.json").read_text())
    assert results["method"] == "qdrop"
    assert results["recon"]["drop_prob"] == 0.5 and results["recon"]["joint"] is True  # the preset, recorded
    assert results["recon"]["round_lambda"] == 0.1 and results["recon"]["partition"] == "block"
    rec = results["reconstruction"]
    assert rec["units"] == 10 and len(rec["per_unit"]) == 10 and rec["cache"].startswith("cpu")
    assert all(r["iters"] == 6 for r in rec["per_unit"]) and "host_peak_rss_mib" in rec["memory"]
    assert results["time_s"]["reconstruction"] > 0
    assert (work / "recon_loss.png").stat().st_size > 1000 and (work / "recon_units.json").is_file()
    assert not (work / "recon_state.pth").exists()  # superseded by quantized.pth
    log = (work / "run.log").read_text()
    assert "[joint 10/10] layer fc: rec loss" in log
    assert "resolved" in (work / "config.py").read_text() and "'drop_prob': 0.5" in (work / "config.py").read_text()
    capsys.readouterr()
    assert test_cli.main([cfg, str(work / "quantized.pth")]) == 0
    assert "reproduced exactly" in capsys.readouterr().out

    # killed after 4 units: --resume continues from unit 5 and ends with the same numbers
    killed = tmp_path / "killed"
    with killed_after_units(4):
        assert quant_cli.main([cfg, "--work-dir", str(killed)]) == 130  # Ctrl-C
    assert "interrupted: rerun with --resume" in capsys.readouterr().err
    assert (killed / "recon_state.pth").is_file() and not (killed / "results.json").exists()
    assert quant_cli.main([cfg, "--work-dir", str(killed), "--resume"]) == 0
    assert "continues at stage 0, unit 4" in (killed / "run.log").read_text()
    resumed = json.loads((killed / "results.json").read_text())
    assert resumed["metrics"] == results["metrics"]
    a = torch.load(work / "quantized.pth", weights_only=True)["state_dict"]
    b = torch.load(killed / "quantized.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_original_range_init_through_the_cli_is_recorded(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny_qdrop.py", dataset, method=dict(type="qdrop", range_init="original"),
                       recon=dict(iters=2, batch_size=4))
    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work)]) == 0
    results = json.loads((work / "results.json").read_text())
    assert results["range_init"] == "original" and results["recon"]["act_reinit_samples"] == 256
    assert {r["observer"] for r in results["placement"]} == {"qdrop_mse"}
    per_unit = results["reconstruction"]["per_unit"]
    assert all(u["act_reinit_s"] >= 0 for u in per_unit if u["unit"] != "fc")  # fc has no activation quantizer
    assert "'range_init': 'original'" in (work / "config.py").read_text()
    capsys.readouterr()
    assert test_cli.main([cfg, str(work / "quantized.pth")]) == 0
    assert "reproduced exactly" in capsys.readouterr().out


def test_pdquant_through_the_cli_with_its_ablations(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny_pdquant.py", dataset, method=dict(type="pdquant"),
                       recon=dict(iters=3, batch_size=4, round_lambda=0.1, dc_iters=3, act_reinit_samples=8,
                                  pd_temperature=4.0))
    assert quant_cli.main([cfg, "--dry-run"]) == 0
    assert "distribution correction: 8 of 8 blocks" in capsys.readouterr().out
    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work)]) == 0
    results = json.loads((work / "results.json").read_text())
    r = results["recon"]
    assert results["method"] == "pdquant" and (r["pd_loss"], r["dc"], r["drop_prob"]) == (True, True, 0.5)
    assert (r["pd_temperature"], r["pd_lambda"], r["act_reinit_samples"]) == (4.0, 0.1, 8)
    per_unit = results["reconstruction"]["per_unit"]
    assert len(per_unit) == 10 and sum("dc" in u for u in per_unit) == 8
    log = (work / "run.log").read_text()
    assert "prediction difference: KL through the full-precision tail, T=4" in log
    assert "distribution correction of layer4.1: BN-statistics loss" in log
    assert all(math.isfinite(p[3]) for u in json.loads((work / "recon_units.json").read_text())["per_unit"]
               for p in u["curve"])

    # local loss only: no prediction difference, no correction, recorded as such
    local = tmp_path / "local"
    assert quant_cli.main([cfg, "--work-dir", str(local), "--cfg-options", "recon.pd_loss=False", "recon.dc=False"]) == 0
    results = json.loads((local / "results.json").read_text())
    assert (results["recon"]["pd_loss"], results["recon"]["dc"]) == (False, False)
    assert not any("dc" in u for u in results["reconstruction"]["per_unit"])
    assert "prediction difference" not in (local / "run.log").read_text()

    # a model whose blocks have no BatchNorm cannot be corrected: one line, before any work
    capsys.readouterr()
    assert quant_cli.main([cfg, "--work-dir", str(tmp_path / "nobn"), "--cfg-options",
                           "model.name=squeezenet1_1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recon.dc=True, but SqueezeNet has no BatchNorm" in err[0]
    assert not (tmp_path / "nobn" / "run.log").exists()


def test_bad_recon_settings_give_one_line_errors(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "tiny_qdrop.py", dataset, method=dict(type="qdrop"))
    for opt, message in (("recon.partition=stage", "recon.partition must be one of"),
                         ("recon.cache=disk", "recon.cache must be one of"),
                         ("recon.drop_prob=2", "recon.drop_prob must be a number in (0, 1]"),
                         ("recon.act_stage.steps=3", "unknown config key 'recon.act_stage.steps'"),
                         ("recon.pd_amp=fp8", "recon.pd_amp must be one of"),
                         ("recon.dc_iters=-1", "recon.dc_iters must be a non-negative integer"),
                         ("recon.pd_temperature=0", "recon.pd_temperature must be a positive number"),
                         ("method.type=qdorp", "unknown method.type 'qdorp'")):
        assert quant_cli.main([cfg, "--dry-run", "--cfg-options", opt]) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
