"""Accuracy grid of the reconstruction methods on the real assets of ../shared/data.

RTN, AdaRound, BRECQ and QDrop on MobileNetV2 (BN-folded) and EfficientNet-Lite0 at W4A4, W2A4 and
W3A3; calibration on imagenet_sample_1000_r256, evaluation on all 1300 images of
imagenet_val_subset_1300. The CPU protocol (--images, --iters, --act-iters, --weight-lr) is stated in the
output; every cell's results.json is kept under benchmarks/out/recon_grid/.

    OMP_NUM_THREADS=2 python benchmarks/recon_grid.py --images 64 --iters 100
    OMP_NUM_THREADS=1 python benchmarks/recon_grid.py --images 64 --iters 60 --weight-lr 0.01 --bits w4a4 \
        --methods adaround brecq --seeds 1005 1 2 3 4     # each cell once per run seed; the spread in seeds.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import ptqvision  # noqa: E402,F401
from seeds import by_seed, fmt_spread, measured, seed_key, threads  # noqa: E402

from ptqvision.runner import run  # noqa: E402
from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "recon_grid")
MODELS = ("mobilenet_v2_folded", "efficientnet_lite0")
BITS = ((4, 4), (2, 4), (3, 3))
METHODS = ("rtn", "qdrop", "brecq", "adaround")


def config_path(method: str, model: str) -> str:
    folder = "rtn" if method == "rtn" else method
    return os.path.join(ROOT, "configs", folder, f"{model}_w4a4.py")


def main() -> None:
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
                        help="run every cell once per run seed (seed=...; same calibration images); done cells are skipped")
    args = parser.parse_args()
    tune_cpu_allocator()
    act_iters = args.act_iters if args.act_iters is not None else max(args.iters // 4, 1)
    os.makedirs(OUT, exist_ok=True)
    table_path = os.path.join(OUT, "grid.json")
    table = json.load(open(table_path)) if os.path.isfile(table_path) else {}
    for model in args.models:
        for bits in args.bits:
            w, a = int(bits[1]), int(bits[3])
            for method, seed in [(m, s) for m in args.methods for s in args.seeds or [None]]:
                key = f"{model}/{bits}/{method}" if seed is None else seed_key(f"{model}/{bits}/{method}", seed)
                opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", f"calib.num_samples={args.images}",
                        "eval.progress=False", "device=cpu", "data.num_workers=0"]
                if method != "rtn":  # full precision is measured once per model, in the RTN cell
                    opts += [f"recon.iters={args.iters}", f"recon.act_stage.iters={act_iters}", "eval.fp=False"]
                    if args.weight_lr is not None:
                        opts.append(f"recon.weight_lr={args.weight_lr}")
                if seed is not None:
                    opts.append(f"seed={seed}")
                    done = table.get(key, {})
                    if done.get("options") == opts and done.get("threads") == threads():
                        continue
                res, timing = measured(run, config_path(method, model), os.path.join(OUT, key.replace("/", "_")), opts)
                table[key] = {"top1": res["metrics"]["quant"]["top1"], "top5": res["metrics"]["quant"]["top5"],
                              "fp_top1": res["metrics"].get("fp", {}).get("top1"), "time_s": timing["wall_s"],
                              "options": opts, **timing,
                              "recon_s": res["time_s"]["reconstruction"], "images": args.images,
                              "iters": args.iters if method != "rtn" else 0,
                              "act_iters": act_iters if method in ("adaround", "brecq") else 0,
                              "weight_lr": args.weight_lr or 1e-3, "calib_sha256": res["calib"]["sha256"],
                              "peak_rss_mib": res.get("reconstruction", {}).get("memory", {}).get("host_peak_rss_mib")}
                with open(table_path + ".tmp", "w") as f:
                    json.dump(table, f, indent=1)
                os.replace(table_path + ".tmp", table_path)
                print(f"{key}: top1 {table[key]['top1']:.2f} ({table[key]['time_s']:.0f} s)", flush=True)
    if args.seeds:
        spreads = by_seed(table)
        with open(os.path.join(OUT, "seeds.json"), "w") as f:
            json.dump(spreads, f, indent=1)
        print("\n| cell | top-1 over seeds: mean ± std (min–max, n) | per seed | wall (s) |\n|---|---|---|---|")
        for key, c in spreads.items():
            print(f"| {key} | {fmt_spread(c['top1'])} | {' / '.join(f'{v:.2f}' for v in c['top1_per_seed'])} | "
                  f"{fmt_spread(c['time_s'], 0)} |")
        return
    print("\n| model | bits | " + " | ".join(args.methods) + " |")
    print("|---|---|" + "---|" * len(args.methods))
    for model in args.models:
        for bits in args.bits:
            cells = [table.get(f"{model}/{bits}/{m}") for m in args.methods]
            print(f"| {model} | {bits.upper()} | " + " | ".join(f"{c['top1']:.2f}" if c else "-" for c in cells) + " |")


if __name__ == "__main__":
    main()
