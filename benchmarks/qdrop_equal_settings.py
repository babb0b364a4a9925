"""QDrop at the original code's settings: ptqvision variants x run seeds against the original's 68.46 / 1892 s.

The setting of ../shared/reference_runs/README.md: MobileNetV2 (BN-folded) W4A4, 8-bit head and stem, the
64 calibration images of calib_stride64.txt, batch 32, 100 iterations per unit, AdaRound lr 1e-2 and
lambda 0.1, beta 20 -> 2 after a 20 % warm-up, drop 0.5, LSQ lr 4e-5 with cosine decay, evaluation on the
1300 images of imagenet_val_subset_1300. Variants (configs/qdrop/mobilenet_v2_folded_w4a4.py plus):

    default          ptqvision's initialisation: Lp search (80 clipping ratios), activations calibrated once
    reinit           default + each unit's activation ranges re-initialised on 256 quantized-model inputs
    original         method.range_init=original: the original's MSE search for weights and activations
                     and the per-unit activation re-initialisation
    mse_weights      default + the MSE search for weights only
    mse_acts_reinit  original with ptqvision's Lp search for the weights (MSE activations + re-initialisation)

Each run is one `tools/quant.py` process with its own work dir under benchmarks/out/qdrop_equal_settings/;
a run whose bench.json records the same command and thread count is not run again, so a killed batch
continues where it stopped. The summary (per variant: top-1, wall, CPU and phase times as mean ± std and
min-max over the seeds) goes to benchmarks/results/issue14/qdrop_equal_settings.json and a markdown table.

    OMP_NUM_THREADS=1 python benchmarks/qdrop_equal_settings.py --variants default reinit original
    python benchmarks/qdrop_equal_settings.py --timed --variants default reinit original   # 2 threads, idle machine
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from seeds import SEEDS, cpu_seconds, fmt_spread, loadavg, spread  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "out", "qdrop_equal_settings")
SUMMARY = os.path.join(ROOT, "benchmarks", "results", "issue14", "qdrop_equal_settings.json")
CONFIG = "configs/qdrop/mobilenet_v2_folded_w4a4.py"
REFERENCE = os.path.join(ROOT, "..", "shared", "reference_runs", "qdrop_master_mobilenet_v2_w4a4_100it_lr1e-2.json")
CALIB_LIST = "../shared/reference_runs/calib_stride64.txt"
COMMON = [f"data.calib.list_file={CALIB_LIST}", "calib.num_samples=64", "calib.batch_size=32", "recon.iters=100",
          "recon.batch_size=32", "recon.weight_lr=0.01", "eval.fp=False", "eval.progress=False", "device=cpu"]
VARIANTS = {
    "default": [],
    "reinit": ["recon.act_reinit_samples=256"],
    "original": ["method.range_init=original"],
    "mse_weights": ["quant.w_observer=qdrop_mse"],
    "mse_acts_reinit": ["quant.a_observer=qdrop_mse", "recon.act_reinit_samples=256"],
}


def run_one(variant: str, seed: int, threads: int, timed: bool) -> dict:
    """Run one variant with one seed (unless its record exists) and return its record."""
    work = os.path.join(OUT, variant, f"seed{seed}" + ("_timed" if timed else ""))
    opts = COMMON + VARIANTS[variant] + [f"seed={seed}"] + ([] if timed else ["data.num_workers=0"])
    cmd = [sys.executable, "tools/quant.py", CONFIG, "--work-dir", os.path.relpath(work, ROOT), "--cfg-options", *opts]
    record_path = os.path.join(work, "bench.json")
    if os.path.isfile(record_path) and os.path.isfile(os.path.join(work, "results.json")):
        with open(record_path) as f:
            old = json.load(f)
        if old.get("cmd") == cmd[1:] and old.get("threads") == threads:
            return old
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load0, cpu0, t0 = loadavg(), cpu_seconds(resource.RUSAGE_CHILDREN), time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall, cpu, load1 = time.time() - t0, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0, loadavg()
    if proc.returncode != 0:
        raise SystemExit(f"{variant} seed {seed} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(work, "results.json")) as f:
        res = json.load(f)
    per_unit = res["reconstruction"]["per_unit"]
    record = {"variant": variant, "seed": seed, "threads": threads, "cmd": cmd[1:],
              "top1": res["metrics"]["quant"]["top1"], "top5": res["metrics"]["quant"]["top5"],
              "time_s": res["time_s"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "loop_s": round(sum(u["time_s"] for u in per_unit), 1),
              "act_reinit_s": round(sum(u.get("act_reinit_s", 0.0) for u in per_unit), 1),
              "loadavg_start": load0, "loadavg_end": load1, "calib_sha256": res["calib"]["sha256"],
              "observers": {"w": res["quant"]["w_observer"], "a": res["quant"]["a_observer"]},
              "act_reinit_samples": res["recon"]["act_reinit_samples"], "range_init": res.get("range_init"),
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    with open(record_path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(record_path + ".tmp", record_path)
    return record


def summarise(runs: list[dict]) -> dict:
    """Return the spread over seeds of a variant's top-1 and times."""
    pick = lambda f: spread([f(r) for r in runs])  # noqa: E731
    return {"top1": pick(lambda r: r["top1"]), "top5": pick(lambda r: r["top5"]),
            "total_s": pick(lambda r: r["time_s"]["total"]), "wall_s": pick(lambda r: r["wall_s"]),
            "cpu_s": pick(lambda r: r["cpu_s"]), "calibration_s": pick(lambda r: r["time_s"]["calibration"]),
            "reconstruction_s": pick(lambda r: r["time_s"]["reconstruction"]),
            "act_reinit_s": pick(lambda r: r["act_reinit_s"]), "evaluation_s": pick(lambda r: r["time_s"]["evaluation"]),
            "seeds": [r["seed"] for r in runs], "threads": sorted({r["threads"] for r in runs}),
            "loadavg": [min(r["loadavg_start"][0] for r in runs), max(r["loadavg_end"][0] for r in runs)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["default", "reinit", "original"], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--threads", type=int, default=1, help="threads of each run (seed passes: 1)")
    parser.add_argument("--timed", action="store_true",
                        help="one run per variant (the first seed) with 2 threads, for wall time on an idle machine")
    parser.add_argument("--summary", action="store_true", help="only summarise the runs done so far")
    args = parser.parse_args()
    threads = 2 if args.timed else args.threads
    seeds = args.seeds[:1] if args.timed else args.seeds
    summary = json.load(open(SUMMARY)) if os.path.isfile(SUMMARY) else {}
    with open(REFERENCE) as f:
        ref = json.load(f)
    summary["reference"] = {"top1": round(ref["quant_top1"], 2), "total_s": ref["total_wall_s"],
                            "threads": ref["threads"], "record": os.path.basename(REFERENCE)}
    summary["setting"] = {"config": CONFIG, "options": COMMON, "variants": VARIANTS}
    section = "timed" if args.timed else "seeds"
    for variant in args.variants:
        runs = []
        for seed in seeds:
            if not args.summary:
                r = run_one(variant, seed, threads, args.timed)
                print(f"{variant} seed {seed}: top1 {r['top1']:.2f}, total {r['time_s']['total']:.0f} s, "
                      f"cpu {r['cpu_s']:.0f} s, load {r['loadavg_start'][0]:.1f}->{r['loadavg_end'][0]:.1f}", flush=True)
            path = os.path.join(OUT, variant, f"seed{seed}" + ("_timed" if args.timed else ""), "bench.json")
            if os.path.isfile(path):
                with open(path) as f:
                    runs.append(json.load(f))
        if runs:
            summary.setdefault(section, {})[variant] = {"runs": {str(r["seed"]): {k: r[k] for k in (
                "top1", "top5", "time_s", "wall_s", "cpu_s", "loop_s", "act_reinit_s", "loadavg_start",
                "loadavg_end", "threads", "finished")} for r in runs}, **summarise(runs)}
    os.makedirs(os.path.dirname(SUMMARY), exist_ok=True)
    with open(SUMMARY + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(SUMMARY + ".tmp", SUMMARY)
    ref_top1, ref_s = summary["reference"]["top1"], summary["reference"]["total_s"]
    print(f"\noriginal QDrop (seed 1005, {ref['threads']} threads): top-1 {ref_top1:.2f}, {ref_s:.0f} s\n")
    print(f"| variant ({section}) | top-1 | per seed | total (s) | CPU (s) | reconstruction (s) | of which act re-init (s) "
          "| original's 68.46 within min-max |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, v in summary.get(section, {}).items():
        per_seed = " / ".join(f"{v['runs'][str(s)]['top1']:.2f}" for s in v["seeds"])
        inside = v["top1"]["min"] <= ref_top1 <= v["top1"]["max"]
        print(f"| {variant} | {fmt_spread(v['top1'])} | {per_seed} | {fmt_spread(v['total_s'], 0)} | "
              f"{fmt_spread(v['cpu_s'], 0)} | {fmt_spread(v['reconstruction_s'], 0)} | "
              f"{fmt_spread(v['act_reinit_s'], 0)} | {'yes' if inside else 'no'} |")


if __name__ == "__main__":
    main()
