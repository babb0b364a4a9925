#!/usr/bin/env python
"""RTN benchmark: W8A8, W6A6, W4A8, W4A4 on the real MobileNetV2 and EfficientNet-Lite0 of ../shared/data.

Every cell is one ``tools/quant.py`` run of its config in configs/rtn/, launched by the sweep machinery
(``ptqvision.sweep``, submitit's local executor), with its own results.json under benchmarks/out/rtn/;
a cell that finished with the same resolved config is skipped. The full-precision accuracy is
evaluated once per model (in its W8A8 cell). The tables (top-1, top-5, calibration and evaluation
seconds) come from the report machinery (``ptqvision.report``) and are written with the plot to
benchmarks/out/rtn/report.{md,png}.

    OMP_NUM_THREADS=2 python benchmarks/rtn_grid.py
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptqvision.report import make_report  # noqa: E402
from ptqvision.sweep import JobSpec, Sweep, SweepSettings, status_table  # noqa: E402

MODELS = ["mobilenet_v2_folded", "efficientnet_lite0"]
BITS = [(8, 8), (6, 6), (4, 8), (4, 4)]
METRICS = ["top1", "top5", "time_s.calibration", "time_s.evaluation"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out"))
    p.add_argument("--cfg-options", nargs="*", default=[], help="applied to every cell")
    p.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    args = p.parse_args()
    os.chdir(ROOT)  # configs name data relative to the repository root
    jobs = [JobSpec(f"{model}_w{w}a{a}", f"configs/rtn/{model}_w{w}a{a}.py",
                    list(args.cfg_options) + ["eval.progress=False"] + (["eval.fp=False"] if i else []))
            for model in MODELS for i, (w, a) in enumerate(BITS)]
    sweep_dir = os.path.join(args.out, "rtn")
    records = Sweep(sweep_dir, jobs, SweepSettings(jobs=args.jobs)).run()
    print(status_table(sweep_dir, [j.name for j in jobs]), end="\n\n")
    print(make_report([sweep_dir], metrics=METRICS, out=os.path.join(sweep_dir, "report.md")), end="")
    return 1 if any(r["state"] != "done" for r in records.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
