"""tools/sweep.py on submitit's local executor: a grid with a broken config, a sweep killed and re-invoked,
the SLURM submission (a stand-in sbatch), and the helpers that decide what to skip and what to resume."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import quant as quant_cli  # noqa: E402
import sweep as sweep_cli  # noqa: E402
from conftest import write_tiny_config  # noqa: E402

from ptqvision.errors import ConfigError  # noqa: E402
from ptqvision.sweep import elapsed_s, expand_configs, job_alive, jobs_from_configs  # noqa: E402
from ptqvision.sweep.job import failure_reason, finished, same_config  # noqa: E402

def rtn(path, data, w=4, a=4, **extra):
    """Write a tiny config with min-max ranges (a run takes a few seconds beyond the interpreter's start)."""
    return write_tiny_config(path, data, quant=dict(w_bits=w, a_bits=a, w_observer="minmax", a_observer="minmax"),
                             **extra)


def status(sweep):
    return json.loads((sweep / "status.json").read_text())["jobs"]


def table(text):
    """Return the first word of each line of a printed table mapped to the rest of the line."""
    return {ln.split()[0]: ln.split(None, 1)[1] for ln in text.splitlines() if len(ln.split()) > 1}


def attempts_in_log(sweep, name):
    return (sweep / "logs" / f"{name}.log").read_text().count("=== attempt")


def test_sweep_runs_every_config_and_records_why_one_failed(tmp_path, tiny_images, capsys):
    grid = tmp_path / "grid"
    grid.mkdir()
    rtn(grid / "rtn_w4a4.py", tiny_images)
    rtn(grid / "rtn_w8a8.py", tiny_images, 8, 8)
    broken = rtn(grid / "broken_w4a4.py", tiny_images)  # fails inside its run: no such evaluation folder
    with open(broken, "a") as f:
        f.write("data = dict(calib=data['calib'], val=dict(root='/nonexistent/val'), preprocess=data['preprocess'],"
                " batch_size=4)\n")
    (grid / "typo_w4a4.py").write_text("quant = dict(wbits=4)\n")  # fails before any job: an unknown key
    sweep = tmp_path / "sweep"
    argv = [str(grid), "--work-dir", str(sweep), "--jobs", "2", "--gpus", "0"]
    assert sweep_cli.main(argv) == 1  # one config failed: the others ran all the same
    out = capsys.readouterr().out
    jobs = status(sweep)
    assert {n: j["state"] for n, j in jobs.items()} == {"broken_w4a4": "failed", "rtn_w4a4": "done",
                                                       "rtn_w8a8": "done", "typo_w4a4": "failed"}
    assert jobs["broken_w4a4"]["reason"] == "dataset root not found or not a folder: /nonexistent/val"
    assert jobs["broken_w4a4"]["returncode"] == 2
    assert jobs["typo_w4a4"]["reason"] == "unknown config key 'quant.wbits'; did you mean 'quant.w_bits'?"
    assert "job_id" not in jobs["typo_w4a4"] or jobs["typo_w4a4"]["job_id"] is None
    assert "dataset root not found or not a folder: /nonexistent/val" in out and "4 jobs: " in out
    for name, bits in (("rtn_w4a4", 4), ("rtn_w8a8", 8)):
        res = json.loads((sweep / name / "results.json").read_text())
        assert res["w_bits"] == bits and res["config"] == str(grid / f"{name}.py")
        assert f"top1 {res['metrics']['quant']['top1']:.2f} (FP {res['metrics']['fp']['top1']:.2f})" in out
    # the two runs went side by side, as two submitit jobs
    a, b = jobs["rtn_w4a4"], jobs["rtn_w8a8"]
    assert a["job_id"] != b["job_id"] and a["started"] <= b["finished"] and b["started"] <= a["finished"]
    # each record says with how many threads its run went: the caller's, else the cores shared by the two
    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // 2))
    assert a["threads"] == b["threads"] == threads

    # the job's code travelled by value: unpickling it imports neither ptqvision nor torch
    pkl = sorted((sweep / "submitit").glob("*_submitted.pkl"))[0]
    probe = subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb')); "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ptqvision', 'torch')))",
                            str(pkl)], capture_output=True, text=True, cwd=str(tmp_path))
    assert probe.returncode == 0 and probe.stdout.strip() == "[]"

    # invoked again: the finished runs are skipped (no new attempt, results untouched), the broken one retried
    mtimes = {n: (sweep / n / "results.json").stat().st_mtime_ns for n in ("rtn_w4a4", "rtn_w8a8")}
    assert sweep_cli.main(argv + ["--dry-run"]) == 0
    plan = table(capsys.readouterr().out)
    # the broken run was refused before it wrote anything (bad data fails before any work): it starts afresh
    assert plan["rtn_w4a4"] == "skip (finished with the same config)" and plan["broken_w4a4"] == "run"
    assert not (sweep / "broken_w4a4" / "config.py").exists()
    assert plan["typo_w4a4"].startswith("fail: unknown config key")
    assert sweep_cli.main(argv) == 1
    jobs = status(sweep)
    assert all(jobs[n]["skipped"] and attempts_in_log(sweep, n) == 1 for n in mtimes)
    assert {n: (sweep / n / "results.json").stat().st_mtime_ns for n in mtimes} == mtimes
    assert jobs["broken_w4a4"]["attempts"] == 2 and jobs["broken_w4a4"]["state"] == "failed"
    # another option is another resolved config: that run is not "finished" any more
    capsys.readouterr()
    assert sweep_cli.main(argv + ["--cfg-options", "calib.num_samples=4", "--dry-run"]) == 0
    assert table(capsys.readouterr().out)["rtn_w4a4"] == "run"
    assert sweep_cli.main(["--status", "--work-dir", str(sweep)]) == 0
    shown = table(capsys.readouterr().out)
    assert shown["broken_w4a4"].startswith("failed") and shown["rtn_w8a8"].startswith("done")


def test_killed_sweep_skips_finished_runs_and_resumes_the_interrupted_one(tmp_path, tiny_images, capsys):
    grid = tmp_path / "grid"
    grid.mkdir()
    rtn(grid / "a_rtn.py", tiny_images)
    slow = rtn(grid / "b_qdrop.py", tiny_images, method=dict(type="qdrop"),
               recon=dict(iters=6, batch_size=4, round_lambda=0.1))
    rtn(grid / "c_rtn.py", tiny_images, 8, 8)
    sweep = tmp_path / "sweep"
    argv = [str(grid), "--work-dir", str(sweep), "--jobs", "1", "--gpus", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "sweep.py"), *argv], cwd=ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state = sweep / "b_qdrop" / "recon_state.pth"
    deadline = time.time() + 300
    while not state.exists() and driver.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), (tmp_path / "driver.log").read_text()[-2000:]
    os.killpg(driver.pid, signal.SIGKILL)  # the whole sweep at once: driver, job wrappers, the run
    driver.wait()
    jobs = status(sweep)
    assert [jobs[n]["state"] for n in ("a_rtn", "b_qdrop", "c_rtn")] == ["done", "running", "queued"]
    assert sweep_cli.main(["--status", "--work-dir", str(sweep)]) == 0
    shown = table(capsys.readouterr().out)
    assert shown["b_qdrop"].startswith("running (gone: rerun the sweep to resume)")
    assert shown["c_rtn"].startswith("queued (gone: rerun the sweep to resume)")
    assert not (sweep / "b_qdrop" / "results.json").exists()
    finished_a = (sweep / "a_rtn" / "results.json").stat().st_mtime_ns

    assert sweep_cli.main(argv) == 0
    jobs = status(sweep)
    assert all(jobs[n]["state"] == "done" for n in ("a_rtn", "b_qdrop", "c_rtn"))
    assert jobs["a_rtn"]["skipped"] and attempts_in_log(sweep, "a_rtn") == 1
    assert (sweep / "a_rtn" / "results.json").stat().st_mtime_ns == finished_a
    assert jobs["b_qdrop"]["resume"] is True and jobs["b_qdrop"]["attempts"] == 2
    assert "--resume" in (sweep / "logs" / "b_qdrop.log").read_text().split("=== attempt 2")[1].splitlines()[0]
    assert "continues at stage 0, unit" in (sweep / "b_qdrop" / "run.log").read_text()
    assert attempts_in_log(sweep, "c_rtn") == 1

    # the resumed run ends where an uninterrupted one does
    ref = tmp_path / "ref"
    assert quant_cli.main([slow, "--work-dir", str(ref)]) == 0
    resumed = json.loads((sweep / "b_qdrop" / "results.json").read_text())
    assert resumed["metrics"] == json.loads((ref / "results.json").read_text())["metrics"]
    a = torch.load(ref / "quantized.pth", weights_only=True)["state_dict"]
    b = torch.load(sweep / "b_qdrop" / "quantized.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_slurm_launcher_submits_one_array_with_the_options(tmp_path, tiny_images, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls.txt"
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho 'Submitted batch job 4242'\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    grid = tmp_path / "grid"
    grid.mkdir()
    rtn(grid / "x_w4a4.py", tiny_images)
    rtn(grid / "y_w8a8.py", tiny_images, 8, 8)
    sweep = tmp_path / "sweep"
    assert sweep_cli.main([str(grid), "--work-dir", str(sweep), "--launcher", "slurm", "--slurm-partition", "gpu",
                           "--timeout-min", "90", "--gpus", "2", "--mem-gb", "32",
                           "--slurm-option", "constraint=a100"]) == 0
    script = calls.read_text().split()[-1]
    text = open(script).read()
    for flag in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1", "#SBATCH --mem=32GB",
                 "#SBATCH --array=0-1%2", "#SBATCH --constraint=a100"):
        assert flag in text, flag
    jobs = status(sweep)
    assert {j["job_id"] for j in jobs.values()} == {"4242_0", "4242_1"}
    assert all(j["state"] == "queued" and j["launcher"] == "slurm" for j in jobs.values())
    assert "x_w4a4" in capsys.readouterr().out


def test_finished_and_resume_decisions_compare_the_resolved_config(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    text = "model = {'type': 'torchvision', 'name': 'resnet18'}\neval = {'fp': True, 'progress': True}\n"
    assert not same_config(str(work), text) and not finished(str(work), text)
    (work / "config.py").write_text(text.replace("'progress': True", "'progress': False"))
    assert same_config(str(work), text)  # a progress bar changes no number
    assert not finished(str(work), text)  # started with this config, not finished: resume it
    (work / "results.json").write_text("{}")
    assert finished(str(work), text)
    assert not finished(str(work), text.replace("resnet18", "resnet50"))  # another config: run it afresh
    (work / "config.py").write_text("not python (")
    assert not same_config(str(work), text)


def test_a_job_is_alive_only_while_its_submitit_process_runs(tmp_path):
    rec = {"state": "running", "launcher": "local", "submit_host": socket.gethostname()}
    # this process runs, but it is no submitit job: the job's pid was reused by another process
    assert not job_alive({**rec, "job_id": str(os.getpid())}, str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "submitit"])
    try:
        assert job_alive({**rec, "job_id": str(child.pid)}, str(tmp_path))
        assert not job_alive({**rec, "state": "done", "job_id": str(child.pid)}, str(tmp_path))
    finally:
        child.kill()
        child.wait()
    assert not job_alive({**rec, "job_id": str(child.pid)}, str(tmp_path))
    assert elapsed_s({"started": "2026-12-01T10:00:00", "finished": "2026-12-01T10:01:05"}) == 65.0
    assert elapsed_s({"state": "queued"}) is None


def test_failure_reasons_are_one_line():
    out = "16:00 INFO config x\nTraceback...\nerror: calib.num_samples must be a positive integer, got 0\n"
    assert failure_reason(2, out) == "calib.num_samples must be a positive integer, got 0"
    assert failure_reason(130, "interrupted: rerun with --resume to continue\n") == "interrupted"
    assert failure_reason(-9, "16:00 INFO [joint 3/10] block layer1.1\n") == "killed by signal SIGKILL"
    assert failure_reason(1, "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n") == \
        "exit code 1: RuntimeError: boom"


def test_config_expansion_and_names(tmp_path, capsys):
    for folder in ("qdrop", "pdquant"):
        (tmp_path / folder).mkdir()
        for name in ("resnet18_w4a4.py", "resnet18_w2a2.py", "_helper.py"):
            (tmp_path / folder / name).write_text("")
    found = expand_configs([str(tmp_path / "qdrop")])
    assert [os.path.basename(p) for p in found] == ["resnet18_w2a2.py", "resnet18_w4a4.py"]
    assert [j.name for j in jobs_from_configs(found)] == ["resnet18_w2a2", "resnet18_w4a4"]
    both = expand_configs([str(tmp_path / "*" / "resnet18_w4a4.py")])
    assert [j.name for j in jobs_from_configs(both, ["quant.a_bits=8"])] == ["pdquant/resnet18_w4a4",
                                                                              "qdrop/resnet18_w4a4"]
    with pytest.raises(ConfigError, match="no config file matches"):
        expand_configs([str(tmp_path / "nothing*.py")])
    assert sweep_cli.main([str(tmp_path / "nothing*.py")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no config file matches {tmp_path / 'nothing*.py'}"
    assert sweep_cli.main([str(tmp_path / "qdrop"), "--jobs", "0", "--work-dir", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == "error: jobs must be at least 1"
