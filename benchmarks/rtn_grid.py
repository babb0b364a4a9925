#!/usr/bin/env python
"""RTN benchmark: W8A8, W6A6, W4A8, W4A4 on the real MobileNetV2 and EfficientNet-Lite0 of ../shared/data.

Every cell runs the full pipeline (tools/quant.py's ``run``) from configs/rtn/, so each has its own
results.json under benchmarks/out/rtn/. The full-precision accuracy is evaluated once per model.
Writes benchmarks/out/rtn_grid.json and prints a markdown table for docs/benchmarks.md.

    OMP_NUM_THREADS=2 python benchmarks/rtn_grid.py
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ptqvision.runner import run  # noqa: E402
from ptqvision.utils.io import atomic_write_json  # noqa: E402
from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402

MODELS = ["mobilenet_v2_folded", "efficientnet_lite0"]
BITS = [(8, 8), (6, 6), (4, 8), (4, 4)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out"))
    p.add_argument("--cfg-options", nargs="*", default=[], help="applied to every cell")
    args = p.parse_args()
    tune_cpu_allocator()
    os.chdir(ROOT)  # configs name data relative to the repository root
    rows = []
    for model in MODELS:
        fp = None
        for w, a in BITS:
            config = f"configs/rtn/{model}_w{w}a{a}.py"
            opts = list(args.cfg_options) + ["eval.progress=False"] + (["eval.fp=False"] if fp else [])
            res = run(config, os.path.join(args.out, "rtn", f"{model}_w{w}a{a}"), opts)
            fp = fp or res["metrics"]["fp"]
            rows.append({"model": model, "w_bits": w, "a_bits": a, "fp": fp, "quant": res["metrics"]["quant"],
                         "time_s": res["time_s"], "calib": res["calib"], "device": res["device"],
                         "versions": res["versions"]})
            print(f"{model} W{w}A{a}: {res['metrics']['quant']['top1']:.2f} (fp {fp['top1']:.2f})", flush=True)
    atomic_write_json(os.path.join(args.out, "rtn_grid.json"), rows)
    print("\n| model | bits | FP top-1 / top-5 | RTN top-1 / top-5 | calibration (s) | evaluation (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | W{r['w_bits']}A{r['a_bits']} | {r['fp']['top1']:.2f} / {r['fp']['top5']:.2f} | "
              f"{r['quant']['top1']:.2f} / {r['quant']['top5']:.2f} | {r['time_s']['calibration']:.1f} | "
              f"{r['time_s']['evaluation']:.1f} |")


if __name__ == "__main__":
    main()
