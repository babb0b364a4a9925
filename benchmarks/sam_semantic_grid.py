"""Accuracy grid of the SAM semantic demo: FP, W8A8, W6A6, W4A4 × RTN, QDrop, PTQ4SAM (Semantic Segment Anything).

The models are **small models trained here on synthetic data**: the SAM is data/demo/sam_shapes's sam_tiny (trained
here on synthetic shapes by tools/make_sam_demo.py; not SAM), the semantic branch the demo's ShapesSegNet in full
precision (data/demo/seg_shapes, tools/make_seg_demo.py); their numbers say nothing about SAM or about real
segmentation benchmarks. Every cell is one ``tools/quant.py`` run of the method's demo config
(configs/demo/sam_shapes_semantic_<method>_w4a4.py: the demo budget of iterations and points) with the bits set by
``--cfg-options``, launched by the sweep machinery (``ptqvision.sweep``) into benchmarks/out/sam_semantic_grid/; a
cell finished with the same resolved config is skipped, a killed one resumes. Only SAM is quantized: the semantic
branch is the same in every cell (its own scores are the "branch alone" row). Evaluation on the 64 seg_shapes
validation scenes (8x8 point prompts per image, the masks voted on the branch's classes). The full-precision row
comes from the first cell. ``--options`` adds ``--cfg-options`` to every cell (e.g. another SAM checkpoint).

Writes ``benchmarks/results/issue12/sam_semantic_grid.json`` (every cell's metrics, per-class IoU, masks per image,
times, options) and prints the report machinery's table (``ptqvision.report``) and a per-class IoU table.

    OMP_NUM_THREADS=1 python benchmarks/sam_semantic_grid.py --jobs 2
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptqvision.report import make_report  # noqa: E402
from ptqvision.sweep import JobSpec  # noqa: E402
from ptqvision.utils.io import atomic_write_json  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from seg_grid import demo_jobs, fmt, run_grid  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "sam_semantic_grid")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue12")
CONFIG = "configs/demo/sam_shapes_semantic_{}_w4a4.py"
BITS = ("w8a8", "w6a6", "w4a4")
METHODS = {"rtn": "RTN", "qdrop": "QDrop", "ptq4sam": "PTQ4SAM"}
LABEL = ("small models trained here on synthetic data (SAM: sam_tiny of data/demo/sam_shapes, not SAM; semantic "
         "branch: ShapesSegNet of data/demo/seg_shapes, full precision): not SAM, not a real segmentation benchmark")


def jobs(bits=BITS, extra: list[str] | None = None) -> list[JobSpec]:
    """Return the cells of this grid (``extra``: options added to every cell)."""
    return demo_jobs(CONFIG, METHODS, bits, extra or [])


def per_class_table(fp: dict, rows: list[tuple[JobSpec, dict]]) -> str:
    """Return the per-class IoU of the branch alone, full precision and every cell, and the masks per image."""
    names = list(fp["per_class"])
    lines = ["| SAM | W/A | " + " | ".join(names) + " | masks / image |", "|---|---|" + "---|" * (len(names) + 1),
             "| (semantic branch alone) | - | " + " | ".join(fmt(fp["branch_per_class"][n]) for n in names) + " | - |",
             "| FP | 32/32 | " + " | ".join(fmt(fp["per_class"][n]) for n in names) + f" | {fp['masks_per_image']} |"]
    for job, res in rows:
        q = res["metrics"]["quant"]
        lines.append(f"| {METHODS[job.label]} | {res['w_bits']}/{res['a_bits']} | "
                     + " | ".join(fmt(q["per_class"][n]) for n in names) + f" | {q['masks_per_image']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", nargs="+", default=list(BITS), help="bit settings (w8a8 w6a6 w4a4 w3a3 ...)")
    p.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    p.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="--cfg-options for every cell")
    p.add_argument("--summary", action="store_true", help="only report the cells done so far")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # configs name data relative to the repository root
    specs = jobs(args.bits, args.options)
    rows, first = run_grid(OUT, specs, args.jobs, args.summary)
    fp = first["metrics"]["fp"]
    summary = {"label": LABEL,
               "command": "python benchmarks/sam_semantic_grid.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "fp": fp, "semantic_branch": first["data"]["protocol"]["quantized"]["semantic_branch"],
               "mask_generator": first["data"]["protocol"]["mask_generator"], "calib": first["calib"],
               "cells": {j.name: {"method": j.label, "bits": f"{r['w_bits']}/{r['a_bits']}", "config": j.config,
                                  "options": j.options, "quant": r["metrics"]["quant"], "time_s": r["time_s"],
                                  "softmax": r["quant"]["softmax"], "bimodal_integration": r["quant"]["bimodal_integration"],
                                  "recon": {k: r["recon"].get(k) for k in ("iters", "batch_size", "weight_lr",
                                                                           "round_lambda", "act_lr", "drop_prob")}
                                  if "recon" in r else None}
                         for j, r in rows},
               "versions": rows[0][1]["versions"]}
    os.makedirs(RESULTS, exist_ok=True)
    atomic_write_json(os.path.join(RESULTS, "sam_semantic_grid.json"), summary)
    # PTQ4SAM's AGQ softmax quantizer differs from the uniform one of RTN and QDrop: shown side by side, noted
    print(make_report([OUT], metrics=["mIoU", "mAcc", "aAcc", "time_s.total"], allow=["placement"], rows=list(METHODS),
                      decimals=2,
                      out=os.path.join(OUT, "report.md"), notes=[LABEL]))
    print(f"semantic branch alone: mIoU {fp['branch_mIoU']:.2f}, aAcc {fp['branch_aAcc']:.2f}\n")
    print(per_class_table(fp, rows))
    return 0 if len(rows) == len(specs) else 1


if __name__ == "__main__":
    sys.exit(main())
