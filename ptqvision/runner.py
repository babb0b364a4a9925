"""The pipeline: adapter.build → quantize → calibrate → method → task evaluator → save, with logging,
progress and resume. It names no model family and no dataset: the adapter and the task do."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import load_into, load_quantized, save_quantized
from .config import dump_config, load_config
from .errors import ConfigError
from .methods import get_method, uses_reconstruction
from .models import ModelAdapter, adapter_for, build_model
from .nn import QuantConfig, check_ready, placement
from .recon import ReconSettings, describe_partition
from .recon.engine import PLOT_FILE, RECORDS_FILE, STATE_FILE
from .tasks import Task, build_task
from .utils.atomic import read_json
from .utils.io import atomic_write_json, atomic_write_text

LOG = logging.getLogger("ptqvision")


@dataclass
class RunContext:
    """Everything a method needs: the config, both models, the calibration data and where to write."""

    cfg: dict
    work_dir: str
    device: torch.device
    fp_model: nn.Module
    qmodel: nn.Module
    calib_batches: list
    adapter: ModelAdapter
    task: Task
    resume: bool = False
    fingerprint: str = ""
    log: logging.Logger = field(default_factory=lambda: LOG)


def resolve_device(name: str) -> torch.device:
    """Return the torch device for 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name} requested but CUDA is not available")
    return torch.device(name)


def versions() -> dict[str, str]:
    """Return the versions of everything that can change a number."""
    out = {"ptqvision": __version__, "python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("torchvision", "timm", "numpy"):
        mod = sys.modules.get(pkg)
        if mod is None:
            try:
                mod = __import__(pkg)
            except ImportError:
                continue
        out[pkg] = getattr(mod, "__version__", "?")
    return out


def host() -> dict[str, Any]:
    """Return what of the machine can change a number or a time: the CPU, torch's CPU kernels, the threads.

    The same code and seed give different roundings (and times) on a CPU with other vector units (AVX2
    against AVX-512 kernels) or with another thread count, so every result records them.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def fingerprint(obj: Any) -> str:
    """Return a short hash of a JSON-serialisable object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def setup_logging(work_dir: str, level: int = logging.INFO) -> None:
    """Log to ``work_dir/run.log`` and to stderr."""
    os.makedirs(work_dir, exist_ok=True)
    LOG.setLevel(level)
    for h in list(LOG.handlers):
        LOG.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    fh = logging.FileHandler(os.path.join(work_dir, "run.log"))
    fh.setFormatter(fmt)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    LOG.addHandler(fh)
    LOG.addHandler(sh)
    LOG.propagate = False


def build_preprocess(cfg: dict, default: dict) -> dict:
    """Return the model's default preprocessing with the config's non-null overrides applied."""
    out = dict(default)
    out.update({k: v for k, v in cfg["data"]["preprocess"].items() if v is not None})
    for key in ("mean", "std"):
        if key in out:
            out[key] = list(out[key])
    return out


def quantize_model(cfg: dict, fp_model: nn.Module) -> tuple[nn.Module, ModelAdapter]:
    """Return (uncalibrated quantized twin, adapter) of ``fp_model`` for a resolved config."""
    adapter = adapter_for(fp_model, cfg["model"]["family"])
    return adapter.quantize(fp_model, QuantConfig.from_any(cfg["quant"])), adapter


def build_quantized(cfg: dict) -> tuple[nn.Module, nn.Module, dict, ModelAdapter]:
    """Return (FP model, uncalibrated quantized twin, preprocessing, adapter) for a resolved config."""
    fp_model, default_pre = build_model(cfg["model"])
    qmodel, adapter = quantize_model(cfg, fp_model)
    return fp_model, qmodel, build_preprocess(cfg, default_pre), adapter


def placement_table(rows: list[dict], full_precision: list[dict] | None = None) -> str:
    """Return the placement as an aligned text table, then the ops kept in full precision on purpose."""
    width = max([len(r["name"]) for r in rows] + [4])
    lines = [f"{'name':<{width}}  kind    bits  granularity  symmetric  observer       type"]
    lines += [f"{r['name']:<{width}}  {r['kind']:<6}  {r['bits']:>4}  {r['granularity']:<11}  "
              f"{str(r['symmetric']):<9}  {r['observer']:<13}  {r.get('type', '-')}" for r in rows]
    w = sum(r["kind"] == "weight" for r in rows)
    lines.append(f"{len(rows)} quantizers: {w} weight, {len(rows) - w} activation")
    if full_precision:
        fw = max(len(r["name"]) for r in full_precision)
        lines.append(f"\nkept in full precision on purpose ({len(full_precision)}):")
        lines += [f"  {r['name']:<{fw}}  {r['what']}" for r in full_precision]
    return "\n".join(lines)


def summary_table(results: dict) -> str:
    """Return the short final table: FP and quantized top-1/top-5, bits, method, time."""
    fp, q = results["metrics"].get("fp", {}), results["metrics"]["quant"]
    keys = [k for k, v in q.items() if isinstance(v, float)]
    fmt = lambda d, k: f"{d[k]:6.2f}" if k in d else "     -"  # noqa: E731
    head = " ".join(f"{k:>6}" for k in keys)
    rows = [
        f"{'model':<22} {'method':<8} {'W/A':<5} {head} {'time(s)':>8}",
        f"{results['model']:<22} {'fp':<8} {'32/32':<5} {' '.join(fmt(fp, k) for k in keys)} {'':>8}",
        f"{results['model']:<22} {results['method']:<8} {results['w_bits']}/{results['a_bits']:<3} "
        f"{' '.join(fmt(q, k) for k in keys)} {results['time_s']['total']:8.1f}",
    ]
    if results.get("note"):
        rows.append(f"note: {results['note']}")
    return "\n".join(rows)


def model_name(cfg: dict) -> str:
    """Return the model's display name: its ``name``, or its ``type`` for fixed architectures."""
    m = cfg["model"]
    return m["name"] or m["type"]


def run(config_path: str, work_dir: str | None = None, options: list[str] | None = None,
        device: str | None = None, resume: bool = False, dry_run: bool = False) -> dict:
    """Run one experiment and return its results dict (also written to ``work_dir/results.json``)."""
    t_start = time.perf_counter()
    if device is not None:
        options = list(options or []) + [f"device={device}"]
    cfg, _ = load_config(config_path, options)
    config_name = os.path.splitext(os.path.basename(config_path))[0]
    work_dir = work_dir or os.path.join("work_dirs", config_name)
    dev = resolve_device(cfg["device"])
    method = get_method(cfg["method"]["type"])
    torch.manual_seed(cfg["seed"])

    fp_model, default_pre = build_model(cfg["model"])
    pre = build_preprocess(cfg, default_pre)
    task = build_task(cfg, pre) if not dry_run else None  # bad data fails here, before any quantization work
    qmodel, adapter = quantize_model(cfg, fp_model)
    rows = placement(qmodel)
    fp_rows = adapter.full_precision(qmodel)
    # checked before any work: the partition exists and distribution correction has BN statistics
    settings = ReconSettings.from_dict(cfg["recon"]) if uses_reconstruction(cfg["method"]["type"]) else None
    schedule = adapter.schedule(qmodel, settings.partition, settings.skip_first_layer) if settings else None
    units = describe_partition(schedule, settings, fp_model) if settings else None
    if dry_run:
        print(placement_table(rows, fp_rows))
        out = {"placement": rows, "full_precision": fp_rows}
        if units is not None:
            out["partition"] = units
            print(f"\nreconstruction units ({cfg['method']['type']}):\n{units}")
        return out

    if not resume:
        archive_previous(work_dir)
    setup_logging(work_dir)
    atomic_write_text(os.path.join(work_dir, "config.py"), dump_config(cfg))
    LOG.info("config %s -> %s (device %s, %s adapter, %s task)", config_path, work_dir, dev, adapter.name,
             cfg["task"]["type"])
    calib_batches, calib_info = task.calibration()
    LOG.info("calibration: %d samples, seed %d, sha256 %s", calib_info["num_samples"], calib_info["seed"],
             calib_info["sha256"][:16])
    progress = bool(cfg["eval"]["progress"])
    evaluator = task.evaluator(dev, progress)
    times = {"calibration": 0.0, "reconstruction": 0.0, "evaluation": 0.0}

    metrics: dict[str, dict] = {}
    if cfg["eval"]["fp"]:
        metrics["fp"], times["evaluation"] = fp_metrics(cfg, pre, fp_model.to(dev), evaluator, work_dir, resume)
        LOG.info("fp: %s", task.format_metrics(metrics["fp"]))

    ckpt_path = os.path.join(work_dir, "quantized.pth")
    run_key = fingerprint({k: v for k, v in cfg.items() if k not in ("eval", "device")})
    qmodel.to(dev)
    finished = load_quantized(ckpt_path) if resume and os.path.isfile(ckpt_path) else None
    report = None
    calib_record: dict = {}
    if finished is not None and finished["meta"].get("fingerprint") == run_key:
        adapter.restore(qmodel, finished["meta"].get("adapter_state", {}))
        load_into(qmodel, finished, ckpt_path)
        report = read_json(os.path.join(work_dir, RECORDS_FILE))
        calib_record = finished["meta"].get("calibration", {})
        LOG.info("resume: quantized model from %s", ckpt_path)
    else:
        t = time.perf_counter()
        calib_record = adapter.calibrate(qmodel, calib_batches, dev, progress=progress, work_dir=work_dir)
        times["calibration"] = time.perf_counter() - t
        LOG.info("calibrated %d quantizers in %.1fs", len(rows), times["calibration"])
        t = time.perf_counter()
        report = method(RunContext(cfg, work_dir, dev, fp_model.to(dev), qmodel, calib_batches, adapter, task,
                                   resume, run_key))
        times["reconstruction"] = time.perf_counter() - t
        check_ready(qmodel)
        save_quantized(ckpt_path, qmodel, {"fingerprint": run_key, "config": dump_config(cfg),
                                           "model": cfg["model"], "quant": cfg["quant"],
                                           "adapter_state": adapter.state(qmodel), "calibration": calib_record})
        state = os.path.join(work_dir, STATE_FILE)
        if os.path.exists(state):  # the finished checkpoint supersedes the per-unit state
            os.unlink(state)

    check_ready(qmodel)
    t = time.perf_counter()
    metrics["quant"] = evaluator.evaluate(qmodel)
    times["evaluation"] += time.perf_counter() - t
    LOG.info("quant: %s", task.format_metrics(metrics["quant"]))
    times["total"] = time.perf_counter() - t_start

    results = {
        "config": config_path,
        "model": model_name(cfg),
        "method": cfg["method"]["type"],
        "range_init": cfg["method"]["range_init"],
        "task": cfg["task"]["type"],
        "adapter": adapter.name,
        "w_bits": cfg["quant"]["w_bits"],
        "a_bits": cfg["quant"]["a_bits"],
        "metrics": metrics,
        "calib": calib_info,
        "time_s": {k: round(v, 3) for k, v in times.items()},
        "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "versions": versions(),
        "host": host(),
        "quant": cfg["quant"],
        "preprocess": pre,
        "data": task.describe_data(),
        "placement": rows,
        "full_precision": fp_rows,
    }
    if cfg["note"]:
        results["note"] = cfg["note"]
    if calib_record:
        results["calibration"] = calib_record
    if uses_reconstruction(cfg["method"]["type"]):
        results["recon"] = cfg["recon"]
        if report:
            results["reconstruction"] = {**{k: v for k, v in report.items() if k != "per_unit"},
                                         "per_unit": [{k: v for k, v in r.items() if k != "curve"}
                                                      for r in report["per_unit"]]}
    atomic_write_json(os.path.join(work_dir, "results.json"), results)
    LOG.info("results written to %s", os.path.join(work_dir, "results.json"))
    return results


def fp_metrics(cfg: dict, pre: dict, fp_model: nn.Module, evaluator: Any, work_dir: str,
               resume: bool) -> tuple[dict, float]:
    """Return (full-precision metrics, seconds spent); reused on resume when model, data and
    preprocessing are unchanged."""
    key = fingerprint([cfg["model"], cfg["task"], cfg["data"]["val"], pre, cfg["data"]["batch_size"],
                       str(evaluator.device)])
    path = os.path.join(work_dir, "fp_metrics.json")
    cached = read_json(path) if resume else None
    if cached and cached.get("fingerprint") == key:
        LOG.info("resume: full-precision metrics from %s", path)
        return cached["metrics"], 0.0
    t = time.perf_counter()
    metrics = evaluator.evaluate(fp_model)
    atomic_write_json(path, {"fingerprint": key, "metrics": metrics})
    return metrics, time.perf_counter() - t


OUTPUTS = ("results.json", "quantized.pth", "config.py", "fp_metrics.json", "run.log", STATE_FILE, RECORDS_FILE,
           PLOT_FILE)


def archive_previous(work_dir: str) -> None:
    """Move the outputs of an earlier run into ``work_dir/previous/`` so that a new run never leaves a
    mix of old and new files (and nothing of the old one is lost until the next run)."""
    found = [name for name in OUTPUTS if os.path.exists(os.path.join(work_dir, name))]
    if not found:
        return
    previous = os.path.join(work_dir, "previous")
    os.makedirs(previous, exist_ok=True)
    for name in OUTPUTS:
        old = os.path.join(previous, name)
        if os.path.exists(old):
            os.unlink(old)
    for name in found:
        os.replace(os.path.join(work_dir, name), os.path.join(previous, name))


def reevaluate(config_path: str, checkpoint: str, options: list[str] | None = None,
               device: str | None = None) -> dict:
    """Rebuild the quantized model from ``checkpoint`` and return its metrics on the config's val set."""
    if device is not None:
        options = list(options or []) + [f"device={device}"]
    payload = load_quantized(checkpoint)
    cfg, _ = load_config(config_path, list(options or []) + ["model.weights=random"])
    dev = resolve_device(cfg["device"])
    _, qmodel, pre, adapter = build_quantized(cfg)
    adapter.restore(qmodel, payload["meta"].get("adapter_state", {}))
    load_into(qmodel, payload, checkpoint)
    qmodel.to(dev)
    check_ready(qmodel)
    return build_task(cfg, pre).evaluator(dev, bool(cfg["eval"]["progress"])).evaluate(qmodel)
