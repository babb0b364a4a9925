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
and 100). Each cell is written to benchmarks/out/pdquant_grid/cells/ as soon as it is done, so several
processes can fill one table (the summary reads them all).

    OMP_NUM_THREADS=1 python benchmarks/pdquant_grid.py --models efficientnet_lite0 --bits w4a4 --variants pd_dc pd
    OMP_NUM_THREADS=1 python benchmarks/pdquant_grid.py --models mobilenet_v2_folded --bits w4a4 --variants qdrop local \
        --seeds 1005 1 2 3 4     # each cell once per run seed (same images); the spread in seeds.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import ptqvision  # noqa: E402,F401
from seeds import by_seed, fmt_spread, measured, seed_key, threads  # noqa: E402

from ptqvision.runner import run  # noqa: E402
from ptqvision.utils.io import atomic_write_json  # noqa: E402
from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "pdquant_grid")
MODELS = ("mobilenet_v2_folded", "efficientnet_lite0")
BITS = ("w4a4", "w2a4", "w2a2")
EXTRA_BITS = ("w3a3",)  # run with --bits w3a3: a low-bit setting that 60 iterations do not leave at chance
VARIANTS = {
    "qdrop": ("qdrop", []),
    "local": ("pdquant", ["recon.pd_loss=False", "recon.dc=False"]),
    "pd": ("pdquant", ["recon.dc=False"]),
    "pd_dc": ("pdquant", []),
    "no_drop": ("pdquant", ["recon.drop_prob=1.0"]),
    "t4": ("pdquant", ["recon.pd_temperature=4.0"]),
}


def main() -> None:
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
                        help="run every cell once per run seed (seed=...; same calibration images); done cells are skipped")
    parser.add_argument("--summary", action="store_true", help="only print the table of the cells done so far")
    args = parser.parse_args()
    tune_cpu_allocator()
    cells_dir = os.path.join(OUT, "cells")
    os.makedirs(cells_dir, exist_ok=True)
    for model in [] if args.summary else args.models:
        for bits in args.bits:
            w, a = int(bits[1]), int(bits[3])
            for variant, seed in [(v, s) for v in args.variants for s in args.seeds or [None]]:
                if model.startswith("mobilenet_v2_folded") and variant == "pd_dc":
                    continue  # no BatchNorm statistics: the same run as "pd"
                folder, extra = VARIANTS[variant]
                key = f"{model}/{bits}/{variant}" if seed is None else seed_key(f"{model}/{bits}/{variant}", seed)
                config = os.path.join(ROOT, "configs", folder, f"{model}_w4a4.py")
                opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", f"calib.num_samples={args.images}",
                        "eval.progress=False", "device=cpu", "data.num_workers=0", "eval.fp=False",
                        f"recon.iters={args.iters}", f"recon.weight_lr={args.weight_lr}"] + extra
                if folder == "pdquant":
                    opts += [f"recon.dc_iters={args.dc_iters}", f"recon.dc_patience={args.dc_patience}"]
                cell_path = os.path.join(cells_dir, key.replace("/", "_") + ".json")
                if seed is not None:
                    opts.append(f"seed={seed}")
                    done = json.load(open(cell_path)).get(key, {}) if os.path.isfile(cell_path) else {}
                    if done.get("options") == opts and done.get("threads") == threads():
                        continue
                res, timing = measured(run, config, os.path.join(OUT, key.replace("/", "_")), opts)
                rec = res["reconstruction"]
                cell = {"top1": res["metrics"]["quant"]["top1"], "top5": res["metrics"]["quant"]["top5"],
                        "time_s": timing["wall_s"], "recon_s": res["time_s"]["reconstruction"],
                        "images": args.images, "iters": args.iters, "weight_lr": args.weight_lr,
                        "options": opts, "recon": res["recon"], "calib_sha256": res["calib"]["sha256"], **timing,
                        "dc_s": round(sum(u.get("dc", {}).get("time_s", 0) for u in rec["per_unit"]), 1),
                        "peak_rss_mib": rec.get("memory", {}).get("host_peak_rss_mib")}
                atomic_write_json(cell_path, {key: cell})
                print(f"{key}: top1 {cell['top1']:.2f} ({cell['time_s']:.0f} s)", flush=True)
    table = {}
    for path in sorted(glob.glob(os.path.join(cells_dir, "*.json"))):
        with open(path) as f:
            table.update(json.load(f))
    atomic_write_json(os.path.join(OUT, "grid.json"), table)
    spreads = by_seed(table)
    if spreads:
        atomic_write_json(os.path.join(OUT, "seeds.json"), spreads)
        print("\n| cell | top-1 over seeds: mean ± std (min–max, n) | per seed | wall (s) |\n|---|---|---|---|")
        for key, c in spreads.items():
            print(f"| {key} | {fmt_spread(c['top1'])} | {' / '.join(f'{v:.2f}' for v in c['top1_per_seed'])} | "
                  f"{fmt_spread(c['time_s'], 0)} |")
    variants = list(VARIANTS)
    print("\n| model | bits | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for model in MODELS:
        for bits in BITS + EXTRA_BITS:
            cells = [table.get(f"{model}/{bits}/{v}") for v in variants]
            if any(cells):
                print(f"| {model} | {bits.upper()} | " + " | ".join(
                    f"{c['top1']:.2f}" if c else "-" for c in cells) + " |")


if __name__ == "__main__":
    main()
