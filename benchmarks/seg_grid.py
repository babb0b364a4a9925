"""Accuracy grid of the semantic-segmentation demo: FP, W8A8, W6A6, W4A4 × RTN, QDrop, PD-Quant.

The model is the demo's ShapesSegNet (configs/_base_/models/seg_shapes_net.py), **a small model trained here on
synthetic shapes** (data/demo/seg_shapes, tools/make_seg_demo.py): its numbers say nothing about real
segmentation benchmarks. Every cell is one ``tools/quant.py`` run of the method's demo config
(configs/demo/seg_shapes_<method>_w4a4.py: the demo budget of iterations) with the bits set by
``--cfg-options``, launched by the sweep machinery (``ptqvision.sweep``, submitit's local executor) into
benchmarks/out/seg_grid/; a cell finished with the same resolved config is skipped, a killed one resumes.
Evaluation on the 64 validation scenes (whole image, long side 128, logits compared at the labels' 256 px). The
full-precision row comes from the first cell. ``--bits`` adds W3A3 or W2A4.

Writes ``benchmarks/results/issue12/seg_grid.json`` (every cell's metrics, per-class IoU, times, options) and
prints the report machinery's table (``ptqvision.report``) and a per-class IoU table.

    OMP_NUM_THREADS=1 python benchmarks/seg_grid.py --jobs 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptqvision.report import make_report  # noqa: E402
from ptqvision.sweep import JobSpec, Sweep, SweepSettings, status_table  # noqa: E402
from ptqvision.utils.io import atomic_write_json  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "seg_grid")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue12")
CONFIG = "configs/demo/seg_shapes_{}_w4a4.py"
BITS = ("w8a8", "w6a6", "w4a4")
METHODS = {"rtn": "RTN", "qdrop": "QDrop", "pdquant": "PD-Quant"}
LABEL = "small model trained here on synthetic shapes (data/demo/seg_shapes), not a real segmentation benchmark"


def demo_jobs(config: str, methods, bits, extra=()) -> list[JobSpec]:
    """Return one cell per method × bits of a demo grid in run order (the first one also evaluates full
    precision): ``config`` has a ``{}`` for the method; ``extra`` are options added to every cell."""
    out = []
    for method in methods:
        for b in bits:
            w, a = int(b[1]), int(b[3])
            opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", "eval.progress=False", "device=cpu", f"eval.fp={not out}",
                    *extra]
            out.append(JobSpec(f"{method}_w{w}a{a}", config.format(method), opts, method))
    return out


def jobs(bits=BITS) -> list[JobSpec]:
    """Return the cells of this grid."""
    return demo_jobs(CONFIG, METHODS, bits)


def run_grid(out: str, specs: list[JobSpec], jobs: int, summary_only: bool) -> tuple[list, dict]:
    """Run the cells not finished yet (unless ``summary_only``), print the sweep's status, and return the
    finished cells as (job, results) and the results of the cell that measured full precision."""
    if not summary_only:
        Sweep(out, specs, SweepSettings(jobs=jobs)).run()
    print(status_table(out, [j.name for j in specs]), end="\n\n")
    rows = []
    for job in specs:
        path = os.path.join(out, job.name, "results.json")
        if os.path.isfile(path):
            with open(path) as f:
                rows.append((job, json.load(f)))
    first = next((r for _, r in rows if "fp" in r["metrics"]), None)
    if first is None:
        raise SystemExit(f"the full-precision row comes from cell {specs[0].name}: run it too")
    return rows, first


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def per_class_table(fp: dict, rows: list[tuple[JobSpec, dict]]) -> str:
    """Return the per-class IoU of full precision and of every cell as a markdown table."""
    names = list(fp["per_class"])
    lines = ["| method | W/A | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names),
             "| FP | 32/32 | " + " | ".join(fmt(fp["per_class"][n]) for n in names) + " |"]
    for job, res in rows:
        pc = res["metrics"]["quant"]["per_class"]
        lines.append(f"| {METHODS[job.label]} | {res['w_bits']}/{res['a_bits']} | " + " | ".join(fmt(pc[n]) for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", nargs="+", default=list(BITS), help="bit settings (w8a8 w6a6 w4a4 w3a3 w2a4)")
    p.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    p.add_argument("--summary", action="store_true", help="only report the cells done so far")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # configs name data relative to the repository root
    specs = jobs(args.bits)
    rows, first = run_grid(OUT, specs, args.jobs, args.summary)
    fp = first["metrics"]["fp"]
    summary = {"label": LABEL, "command": "python benchmarks/seg_grid.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "fp": fp, "cells": {j.name: {"method": j.label, "bits": f"{r['w_bits']}/{r['a_bits']}", "config": j.config,
                                            "options": j.options, "quant": r["metrics"]["quant"], "time_s": r["time_s"],
                                            "recon": {k: r["recon"].get(k) for k in ("iters", "batch_size", "weight_lr",
                                                                                      "round_lambda", "pd_loss", "dc")}
                                            if "recon" in r else None}
                                   for j, r in rows},
               "versions": rows[0][1]["versions"]}
    os.makedirs(RESULTS, exist_ok=True)
    atomic_write_json(os.path.join(RESULTS, "seg_grid.json"), summary)
    print(make_report([OUT], metrics=["mIoU", "mAcc", "aAcc", "time_s.total"], rows=list(METHODS), decimals=2,
                      out=os.path.join(OUT, "report.md"), notes=[LABEL]))
    print(per_class_table(fp, rows))
    return 0 if len(rows) == len(specs) else 1


if __name__ == "__main__":
    sys.exit(main())
