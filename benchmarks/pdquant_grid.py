"""QDrop versus PD-Quant and its ablations on the real assets of ../shared/data.

MobileNetV2 (BN-folded: no BatchNorm statistics, so no distribution correction) and EfficientNet-Lite0
at W4A4, W2A4 and W2A2; calibration on imagenet_sample_1000_r256, evaluation on all 1300 images of
imagenet_val_subset_1300. Variants (all from configs/qdrop and configs/pdquant plus --cfg-options):

    qdrop     QDrop
    local     PD-Quant with the local loss only (QDrop + per-block activation re-initialisation, lr as QDrop)
    pd        + prediction difference
    pd_dc     + distribution correction (full PD-Quant; on MobileNetV2 the same as pd)
    no_drop   full PD-Quant without QDrop's drop (drop probability 1)
    t4        full PD-Quant with T = 4 instead of 1

The CPU protocol is part 2's (64 images, 60 iterations, AdaRound lr 1e-2 for every variant) with the
distribution correction scaled like the iterations (100 Adam steps, plateau patience 20, instead of 500
and 100). Every cell is one tools/quant.py run launched by the sweep machinery (ptqvision.sweep) in
benchmarks/out/pdquant_grid/<model>_<bits>_<variant>/ (a cell finished with the same resolved config is
skipped; several invocations, even at once, fill one sweep); the table of every cell done so far comes
from the report machinery (ptqvision.report) and is written with the plot to
benchmarks/out/pdquant_grid/report.{md,png}. With --seeds, every cell runs once per run seed instead (its
own job, ``seed=<s>`` among its options, in <model>_<bits>_<variant>_seed<s>/; the same calibration images);
the spread of each seeded cell over its seeds is printed and written to benchmarks/out/pdquant_grid/seeds.json.

    OMP_NUM_THREADS=1 python benchmarks/pdquant_grid.py --models efficientnet_lite0 --bits w4a4 --variants pd_dc pd
    OMP_NUM_THREADS=1 python benchmarks/pdquant_grid.py --models mobilenet_v2_folded --bits w4a4 --variants qdrop local \
        --seeds 1005 1 2 3 4     # each cell once per run seed (same images); the spread in seeds.json
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

OUT = os.path.join(ROOT, "benchmarks", "out", "pdquant_grid")
MODELS = ("mobilenet_v2_folded", "efficientnet_lite0")
BITS = ("w4a4", "w2a4", "w2a2")  # and --bits w3a3: a low-bit setting that 60 iterations do not leave at chance
VARIANTS = {
    "qdrop": ("qdrop", []),
    "local": ("pdquant", ["recon.pd_loss=False", "recon.dc=False"]),
    "pd": ("pdquant", ["recon.dc=False"]),
    "pd_dc": ("pdquant", []),
    "no_drop": ("pdquant", ["recon.drop_prob=1.0"]),
    "t4": ("pdquant", ["recon.pd_temperature=4.0"]),
}
LABELS = {"qdrop": "qdrop", "local": "local loss only", "pd": "+ prediction difference",
          "pd_dc": "+ distribution correction (PD-Quant)", "no_drop": "PD-Quant, drop off", "t4": "PD-Quant, T = 4"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="calibration images")
    parser.add_argument("--iters", type=int, default=60, help="iterations per unit (paper: 20000)")
    parser.add_argument("--weight-lr", type=float, default=1e-2, help="AdaRound lr (papers: 1e-3 QDrop, 3e-3 PD-Quant)")
    parser.add_argument("--dc-iters", type=int, default=100, help="distribution-correction steps (paper: 500)")
    parser.add_argument("--dc-patience", type=int, default=20, help="plateau patience (paper: 100)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--bits", nargs="+", default=list(BITS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="run every cell once per run seed (seed=...; same calibration images), each its own "
                             "job; done cells are skipped")
    parser.add_argument("--summary", action="store_true", help="only print the table of the cells done so far")
    parser.add_argument("--jobs", type=int, default=1, help="cells run side by side")
    args = parser.parse_args()
    jobs = []
    for model in [] if args.summary else args.models:
        for bits in args.bits:
            w, a = int(bits[1]), int(bits[3])
            for variant, seed in [(v, s) for v in args.variants for s in args.seeds or [None]]:
                if model.startswith("mobilenet_v2_folded") and variant == "pd_dc":
                    continue  # no BatchNorm statistics: the same run as "pd"
                folder, extra = VARIANTS[variant]
                key = f"{model}/{bits}/{variant}"
                config = os.path.join(ROOT, "configs", folder, f"{model}_w4a4.py")
                opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", f"calib.num_samples={args.images}",
                        "eval.progress=False", "device=cpu", "data.num_workers=0", "eval.fp=False",
                        f"recon.iters={args.iters}", f"recon.weight_lr={args.weight_lr}"] + extra
                if folder == "pdquant":
                    opts += [f"recon.dc_iters={args.dc_iters}", f"recon.dc_patience={args.dc_patience}"]
                if seed is not None:
                    opts.append(f"seed={seed}")
                jobs.append(JobSpec(seeded_job(key.replace("/", "_"), seed), config, opts, label=LABELS[variant]))
    code = 0
    if jobs:
        records = Sweep(OUT, jobs, SweepSettings(gpus=0, jobs=args.jobs)).run()  # the cells run on the CPU
        print(status_table(OUT, [j.name for j in jobs]), end="\n\n")
        code = 1 if any(r["state"] != "done" for r in records.values()) else 0
    write_spreads(OUT)  # the spread over the seeds of every seeded cell of the sweep, if any
    cells, notes = grid_cells(OUT)
    if cells:
        print(make_report(cells=cells, notes=notes, metrics=["top1", "top5"], rows=list(LABELS.values()),
                          out=os.path.join(OUT, "report.md")), end="")
    elif not args.seeds:
        print("no table: " + "; ".join(notes))
    return code


if __name__ == "__main__":
    sys.exit(main())
