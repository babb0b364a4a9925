#!/usr/bin/env python
"""Accuracy grid of the SAM demo: FP, W8A8, W6A6, W4A4 × RTN, QDrop, PTQ4SAM, PTQ4SAM's ablations, and trap 1.

The model is the demo's sam_tiny (data/demo/sam_shapes), **a small SAM trained here on synthetic shapes, not SAM**;
its numbers say nothing about SAM on COCO. Every cell is one ``tools/quant.py`` run of a demo config
(configs/demo/sam_shapes_{rtn,qdrop,ptq4sam}_w4a4.py: 32 calibration images, 150 iterations per unit) with the bits
set by ``--cfg-options``, launched by the sweep machinery (``ptqvision.sweep``, submitit's local executor) into
benchmarks/out/sam_grid/; a cell finished with the same resolved config is skipped, a killed one resumes. The
ablations at W4A4: PTQ4SAM with ``quant.bimodal_integration=False`` (BIG off) and with ``quant.softmax='uniform'``
(AGQ off); with both off it is the QDrop row (same placement, units and drop). Full precision is measured once, in
the RTN W8A8 cell. The table comes from the report machinery (``ptqvision.report``).

Trap 1 (REFERENCE.md section 6): PTQ4SAM's original evaluation left QDrop's drop probability of the activation
quantizers at 0.5, so half of every activation went unquantized. ``--trap1`` re-evaluates the PTQ4SAM W4A4
checkpoint that way (every non-weight quantizer's ``drop_prob`` set to 0.5, for several drop seeds) beside the
correct evaluation (every drop probability 1, as every ptqvision run checks before evaluating). This is an option
of this script only: no config can turn it on.

Writes benchmarks/results/issue11/sam_grid.json (every cell's metrics, BIG's decisions, the chosen τ, times,
options) and sam_grid.md (the tables).

    OMP_NUM_THREADS=1 python benchmarks/sam_grid.py --jobs 2 --trap1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptqvision.report import make_report  # noqa: E402
from ptqvision.sweep import JobSpec, Sweep, SweepSettings, status_table  # noqa: E402
from ptqvision.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "sam_grid")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue11")
CONFIG = "configs/demo/sam_shapes_{}_w4a4.py"
BITS = ((8, 8), (6, 6), (4, 4))
ROWS = ["rtn", "qdrop", "ptq4sam", "ptq4sam (BIG off)", "ptq4sam (AGQ off)"]
ABLATIONS = {"big_off": ("ptq4sam (BIG off)", ["quant.bimodal_integration=False"]),
             "agq_off": ("ptq4sam (AGQ off)", ["quant.softmax=uniform"])}
METRICS = ["segm_mAP", "segm_mAP_50", "segm_mAP_75", "time_s.total"]
LABEL = "sam_tiny: a small SAM trained here on synthetic shapes (data/demo/sam_shapes), not SAM"
TRAP1_SEEDS = (0, 1, 2, 3, 4)


def jobs() -> list[JobSpec]:
    """Return the cells in run order (the first one also evaluates full precision)."""
    common = ["eval.progress=False", "device=cpu"]
    out = []
    for method in ("rtn", "qdrop", "ptq4sam"):
        for w, a in BITS:
            fp = ["eval.fp=True"] if (method, w) == ("rtn", 8) else ["eval.fp=False"]
            out.append(JobSpec(f"{method}_w{w}a{a}", CONFIG.format(method),
                               common + fp + [f"quant.w_bits={w}", f"quant.a_bits={a}"], method))
    for name, (label, extra) in ABLATIONS.items():
        out.append(JobSpec(f"ptq4sam_{name}_w4a4", CONFIG.format("ptq4sam"),
                           common + ["eval.fp=False", "quant.w_bits=4", "quant.a_bits=4"] + extra, label))
    return out


def trap1(job: JobSpec, seeds=TRAP1_SEEDS) -> dict:
    """Evaluate a finished run's checkpoint correctly and with every activation quantizer dropping at 0.5."""
    import torch

    from ptqvision.checkpoint import load_into, load_quantized
    from ptqvision.config import load_config
    from ptqvision.nn import check_ready
    from ptqvision.nn.ops import QuantOp
    from ptqvision.runner import build_quantized, resolve_device
    from ptqvision.tasks import build_task

    checkpoint = os.path.join(OUT, job.name, "quantized.pth")
    payload = load_quantized(checkpoint)
    cfg, _ = load_config(job.config, job.options + ["model.weights=random"])
    dev = resolve_device(cfg["device"])
    _, qmodel, pre, adapter = build_quantized(cfg)
    adapter.restore(qmodel, payload["meta"].get("adapter_state", {}))
    load_into(qmodel, payload, checkpoint)
    qmodel.to(dev).eval()
    check_ready(qmodel)
    evaluator = build_task(cfg, pre).evaluator(dev, False)
    t = time.perf_counter()
    correct = evaluator.evaluate(qmodel)
    out = {"checkpoint": os.path.relpath(checkpoint, ROOT), "correct": correct, "correct_s": round(time.perf_counter() - t, 1)}
    quantizers = [m.quantizers()["input"] for m in qmodel.modules() if isinstance(m, QuantOp) and "input" in m.quantizers()]
    for q in quantizers:
        q.drop_prob = 0.5
    runs = {}
    for seed in seeds:
        torch.manual_seed(seed)
        runs[str(seed)] = evaluator.evaluate(qmodel)
    for q in quantizers:
        q.drop_prob = 1.0
    check_ready(qmodel)
    values = [r["segm_mAP"] for r in runs.values()]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    out.update(drop_0_5=runs, input_quantizers=len(quantizers),
               drop_0_5_segm_mAP={"mean": round(mean, 2), "std": round(std, 2), "min": round(min(values), 2),
                                  "max": round(max(values), 2), "n": len(values)})
    return out


def cell_record(work_dir: str) -> dict:
    """Return what the grid keeps of one finished cell."""
    with open(os.path.join(work_dir, "results.json")) as f:
        res = json.load(f)
    keep = ("segm_mAP", "segm_mAP_50", "segm_mAP_75", "segm_mAP_s", "segm_mAP_m", "segm_mAP_l", "num_predictions")
    calib = res.get("calibration", {})
    return {"method": res["method"], "w_bits": res["w_bits"], "a_bits": res["a_bits"],
            "quant": {k: res["metrics"]["quant"].get(k) for k in keep},
            "fp": {k: res["metrics"]["fp"].get(k) for k in keep} if "fp" in res["metrics"] else None,
            "bimodal_integration": calib.get("bimodal_integration"), "softmax_tau": calib.get("softmax_tau"),
            "softmax": res["quant"].get("softmax"), "time_s": res["time_s"], "calib": res["calib"],
            "versions": res.get("versions")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    p.add_argument("--trap1", action="store_true", help="also evaluate PTQ4SAM W4A4 with the drop left at 0.5")
    p.add_argument("--summary", action="store_true", help="only report the cells done so far")
    args = p.parse_args()
    os.chdir(ROOT)  # configs name data relative to the repository root
    specs = jobs()
    if not args.summary:
        Sweep(OUT, specs, SweepSettings(jobs=args.jobs)).run()
    print(status_table(OUT, [j.name for j in specs]), end="\n\n")
    done = [j for j in specs if os.path.isfile(os.path.join(OUT, j.name, "results.json"))]
    record = {"note": LABEL, "protocol": "configs/demo/sam_shapes_*_w4a4.py: 32 calibration images, 150 iterations "
              "per unit, AdaRound lr 1e-2; 64 generated validation scenes, simulated detector boxes; COCO segm mAP",
              "cells": {j.name: dict(cell_record(os.path.join(OUT, j.name)), label=j.label, options=j.options)
                        for j in done}}
    path = os.path.join(RESULTS, "sam_grid.json")
    if os.path.isfile(path):  # keep a trap-1 record made earlier when this call does not redo it
        with open(path) as f:
            record.setdefault("trap1", json.load(f).get("trap1"))
    target = next(j for j in specs if j.name == "ptq4sam_w4a4")
    if args.trap1 and target in done:
        record["trap1"] = trap1(target)
    os.makedirs(RESULTS, exist_ok=True)
    atomic_write_json(path, record)
    text = make_report([OUT], metrics=METRICS, allow=["placement"], rows=ROWS, decimals=2,
                       out=os.path.join(OUT, "report.md"), notes=[LABEL])
    trap = record.get("trap1")
    if trap:
        s = trap["drop_0_5_segm_mAP"]
        text += (f"\nTrap 1, PTQ4SAM W4A4: correct evaluation (every drop probability 1) segm mAP "
                 f"{trap['correct']['segm_mAP']:.2f}; with the {trap['input_quantizers']} layer-input quantizers "
                 f"dropping at 0.5: {s['mean']:.2f} ± {s['std']:.2f} ({s['min']:.2f}-{s['max']:.2f}, n={s['n']} drop "
                 f"seeds); gap {s['mean'] - trap['correct']['segm_mAP']:+.2f}.\n")
    for name, cell in record["cells"].items():
        for att in cell.get("bimodal_integration") or []:
            text += (f"\nBIG, {name}: {att['attention']}: {'bimodal' if att['bimodal'] else 'not bimodal'} "
                     f"(peaks {att['peaks']}), {att['flipped']}/{att['channels']} channels flipped")
        if cell.get("bimodal_integration"):
            text += "\n"
            break
    atomic_write_text(os.path.join(RESULTS, "sam_grid.md"), text)
    print(text)
    return 0 if len(done) == len(specs) else 1


if __name__ == "__main__":
    sys.exit(main())
