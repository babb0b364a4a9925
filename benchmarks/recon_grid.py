"""Accuracy grid of the reconstruction methods on the real assets of ../shared/data.

RTN, AdaRound, BRECQ and QDrop on MobileNetV2 (BN-folded) and EfficientNet-Lite0 at W4A4, W2A4 and
W3A3; calibration on imagenet_sample_1000_r256, evaluation on all 1300 images of
imagenet_val_subset_1300. The CPU protocol (--images, --iters, --act-iters, --weight-lr) is stated in the
output. Every cell is one tools/quant.py run launched by the sweep machinery (ptqvision.sweep), its
results.json kept under benchmarks/out/recon_grid/<model>_<bits>_<method>/ (a cell finished with the same
resolved config is skipped); the tables (top-1, top-5, seconds per cell) come from the report machinery
(ptqvision.report) and are written with the plot to benchmarks/out/recon_grid/report.{md,png}. With
--seeds, every cell runs once per run seed instead (its own job, ``seed=<s>`` among its options, in
<model>_<bits>_<method>_seed<s>/; the same calibration images), and the spread of each cell over its seeds
is printed and written to benchmarks/out/recon_grid/seeds.json.

    OMP_NUM_THREADS=2 python benchmarks/recon_grid.py --images 64 --iters 100
    OMP_NUM_THREADS=1 python benchmarks/recon_grid.py --images 64 --iters 60 --weight-lr 0.01 --bits w4a4 \
        --methods adaround brecq --seeds 1005 1 2 3 4     # each cell once per run seed; the spread in seeds.json
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import ptqvision  # noqa: E402,F401
from seeds import grid_cells, seeded_job, write_spreads  # noqa: E402

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
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="run every cell once per run seed (seed=...; same calibration images), each its own "
                             "job; done cells are skipped")
    parser.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    args = parser.parse_args()
    act_iters = args.act_iters if args.act_iters is not None else max(args.iters // 4, 1)
    jobs = []
    for model in args.models:
        for bits in args.bits:
            w, a = int(bits[1]), int(bits[3])
            for method, seed in [(m, s) for m in args.methods for s in args.seeds or [None]]:
                key = f"{model}/{bits}/{method}"
                opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", f"calib.num_samples={args.images}",
                        "eval.progress=False", "device=cpu", "data.num_workers=0"]
                if method != "rtn":  # full precision is measured once per model, in the RTN cell
                    opts += [f"recon.iters={args.iters}", f"recon.act_stage.iters={act_iters}", "eval.fp=False"]
                    if args.weight_lr is not None:
                        opts.append(f"recon.weight_lr={args.weight_lr}")
                if seed is not None:
                    opts.append(f"seed={seed}")
                jobs.append(JobSpec(seeded_job(key.replace("/", "_"), seed), config_path(method, model), opts,
                                    label=method))
    records = Sweep(OUT, jobs, SweepSettings(gpus=0, jobs=args.jobs)).run()  # the cells run on the CPU
    print(status_table(OUT, [j.name for j in jobs]), end="\n\n")
    code = 1 if any(r["state"] != "done" for r in records.values()) else 0
    if args.seeds:  # the spread over the seeds of every seeded cell of the sweep
        write_spreads(OUT)
        return code
    # BRECQ's configs keep the stem's output at 8 bit (its paper's placement): a difference the table notes
    cells, notes = grid_cells(OUT)
    if not cells:
        print("no table: " + "; ".join(notes))
        return code
    print(make_report(cells=cells, notes=notes, metrics=["top1", "top5", "time_s.total"], allow=["placement"],
                      out=os.path.join(OUT, "report.md")), end="")
    return code


if __name__ == "__main__":
    sys.exit(main())
