"""Accuracy grid of the reconstruction methods on the real assets of ../shared/data.

RTN, AdaRound, BRECQ and QDrop on MobileNetV2 (BN-folded) and EfficientNet-Lite0 at W4A4, W2A4 and
W3A3; calibration on imagenet_sample_1000_r256, evaluation on all 1300 images of
imagenet_val_subset_1300. The CPU protocol (--images, --iters, --act-iters, --weight-lr) is stated in the
output. Every cell is one tools/quant.py run launched by the sweep machinery (ptqvision.sweep), its
results.json kept under benchmarks/out/recon_grid/<model>_<bits>_<method>/ (a cell finished with the same
resolved config is skipped); the tables (top-1, top-5, seconds per cell) come from the report machinery
(ptqvision.report) and are written with the plot to benchmarks/out/recon_grid/report.{md,png}.

    OMP_NUM_THREADS=2 python benchmarks/recon_grid.py --images 64 --iters 100
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import ptqvision  # noqa: E402,F401

from ptqvision.report import make_report  # noqa: E402
from ptqvision.sweep import JobSpec, Sweep, SweepSettings, status_table  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "recon_grid")
MODELS = ("mobilenet_v2_folded", "efficientnet_lite0")
BITS = ((4, 4), (2, 4), (3, 3))
METHODS = ("rtn", "qdrop", "brecq", "adaround")


def config_path(method: str, model: str) -> str:
    folder = "rtn" if method == "rtn" else method
    return os.path.join(ROOT, "configs", folder, f"{model}_w4a4.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="calibration images")
    parser.add_argument("--iters", type=int, default=100, help="iterations per unit (paper: 20000)")
    parser.add_argument("--act-iters", type=int, default=None,
                        help="BRECQ/AdaRound activation-stage iterations (default: iters/4, paper 5000 of 20000)")
    parser.add_argument("--weight-lr", type=float, default=None, help="AdaRound lr (default: the paper's 1e-3)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--bits", nargs="+", default=[f"w{w}a{a}" for w, a in BITS])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    args = parser.parse_args()
    act_iters = args.act_iters if args.act_iters is not None else max(args.iters // 4, 1)
    jobs = []
    for model in args.models:
        for bits in args.bits:
            w, a = int(bits[1]), int(bits[3])
            for method in args.methods:
                key = f"{model}/{bits}/{method}"
                opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", f"calib.num_samples={args.images}",
                        "eval.progress=False", "device=cpu", "data.num_workers=0"]
                if method != "rtn":  # full precision is measured once per model, in the RTN cell
                    opts += [f"recon.iters={args.iters}", f"recon.act_stage.iters={act_iters}", "eval.fp=False"]
                    if args.weight_lr is not None:
                        opts.append(f"recon.weight_lr={args.weight_lr}")
                jobs.append(JobSpec(key.replace("/", "_"), config_path(method, model), opts, label=method))
    records = Sweep(OUT, jobs, SweepSettings(gpus=0, jobs=args.jobs)).run()  # the cells run on the CPU
    print(status_table(OUT, [j.name for j in jobs]), end="\n\n")
    # BRECQ's configs keep the stem's output at 8 bit (its paper's placement): a difference the table notes
    print(make_report([OUT], metrics=["top1", "top5", "time_s.total"], allow=["placement"],
                      out=os.path.join(OUT, "report.md")), end="")
    return 1 if any(r["state"] != "done" for r in records.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
