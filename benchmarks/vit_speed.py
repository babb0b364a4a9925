"""Speed and memory of one reconstruction unit: a DeiT-S block, a Swin-T block and a ResNet-18 block.

QDrop's joint stage (AdaRound + LSQ activation steps, drop probability 0.5), W4A4, batch 32, on one unit
of each model, in the same run of this script (each model in its own child process, so that the peak
RSS is that model's). Random weights and random calibration images (64 images 3×224×224, seed 0; the
quantizer ranges are calibrated on the first 16 of them, ``--calib-images``, as AGQ's softmax search on
197×197 maps is slow on a CPU): the speed of a unit does not depend on the values.

Units (``--units`` to change): DeiT-S ``blocks.0`` (197 tokens, width 384, 6 heads), Swin-T
``layers.0.blocks.1`` (stage 0, 56×56 tokens in 7×7 windows, width 96, 3 heads, the shifted-window block,
so the mask add is exercised), ResNet-18 ``layer1.0`` (56×56, 64 channels). The model's full schedule is
built, every other unit is turned into a plain item (run as calibrated, never optimised) and the items
after the chosen unit are left out (QDrop's loss is local, it needs nothing downstream), so only the unit
is reconstructed.

Reported per unit: iterations per second (the engine's ``it_per_s``: iterations / wall time of the
unit's loop), ms per iteration (1000 / it_per_s), the median ms per iteration (time between consecutive
forward calls of the unit inside the loop; on CUDA these are host-side times, with the loop's
asynchronous launches), the cache of the two streams (``cache_mib``: the peak over the items run) and the
peak RSS of the process (and the peak device memory on CUDA).

    OMP_NUM_THREADS=2 python benchmarks/vit_speed.py                 # CPU, 100 iterations
    python benchmarks/vit_speed.py --device cuda --iters 2000        # GPU

On a CPU shared with other jobs, set OMP_WAIT_POLICY=PASSIVE: spinning OpenMP threads of two processes on
the same cores slow both down by tens of times.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue10")

MODELS = {
    "deit_small": dict(build=dict(type="timm", name="deit_small_patch16_224", weights="random"),
                       unit="blocks.0", what="DeiT-S block (197 tokens, width 384, 6 heads)"),
    "swin_tiny": dict(build=dict(type="timm", name="swin_tiny_patch4_window7_224", weights="random"),
                      unit="layers.0.blocks.1",
                      what="Swin-T stage-0 shifted-window block (56x56 tokens, 7x7 windows, width 96, 3 heads)"),
    "resnet18": dict(build=dict(type="torchvision", name="resnet18", weights="random"),
                     unit="layer1.0", what="ResNet-18 basic block (56x56, 64 channels)"),
}
# Placements: the vision-transformer default of configs/_base_/quant/vit_default.py with the demo's AGQ
# softmax, and the CNN default of configs/_base_/quant/cnn_default.py.
VIT_QUANT = dict(w_bits=4, a_bits=4, head_stem_8bit=False, softmax="agq", attn_granularity="tensor",
                 ln_reparam=False, patch_embed_a_bits=8)
CNN_QUANT = dict(w_bits=4, a_bits=4, head_stem_8bit=True)


def one_unit_schedule(schedule, unit_name: str):
    """Return ``schedule`` cut after unit ``unit_name``, with every other unit made a plain item."""
    from ptqvision.models.schedule import Item, Schedule

    names = [it.unit.name for it in schedule.items if it.unit is not None]
    if unit_name not in names:
        raise SystemExit(f"unit {unit_name!r} not in the schedule; units: {', '.join(names)}")
    items = []
    for it in schedule.items:
        keep = it.unit is not None and it.unit.name == unit_name
        items.append(it if keep else Item(it.module, it.inputs, it.outputs, None))
        if keep:
            break
    return Schedule(items, schedule.inputs, items[-1].outputs[0]), items[-1]


def measure(key: str, unit_name: str, iters: int, device: str, num_images: int, batch: int,
            calib_images: int) -> dict:
    import ptqvision  # noqa: F401  (its torchvision shim before timm)
    import torch

    from ptqvision.methods import PRESETS
    from ptqvision.models import build_model
    from ptqvision.models.adapters import CNNAdapter
    from ptqvision.models.vit import ViTAdapter
    from ptqvision.nn import QuantConfig
    from ptqvision.recon import ReconSettings, reconstruct
    from ptqvision.utils.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    spec = MODELS[key]
    torch.manual_seed(0)
    model, _ = build_model(dict(spec["build"]))
    model = model.eval().to(device)
    vit = key != "resnet18"
    adapter = ViTAdapter() if vit else CNNAdapter()
    t = time.perf_counter()
    qmodel = adapter.quantize(model, QuantConfig(**(VIT_QUANT if vit else CNN_QUANT))).to(device)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(num_images, 3, 224, 224, generator=g)
    batches = [b.to(device) for b in images.split(batch)]
    # ranges from the first calib_images images (AGQ's search on 197x197 maps is slow on a CPU; the loop's
    # speed does not depend on the ranges); the reconstruction caches all num_images
    adapter.calibrate(qmodel, [b.to(device) for b in images[:calib_images].split(batch)], torch.device(device),
                      progress=False)
    setup_s = time.perf_counter() - t
    rss_setup = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    schedule, item = one_unit_schedule(adapter.schedule(qmodel, "block"), unit_name or spec["unit"])

    stamps: list[float] = []

    def stamp(_m, _args):  # the loop's forwards only (the losses before/after run under no_grad)
        if torch.is_grad_enabled():
            stamps.append(time.perf_counter())

    handle = item.module.register_forward_pre_hook(stamp)
    settings = {**ReconSettings.defaults(), **PRESETS["qdrop"], "iters": iters, "batch_size": batch,
                "weight_lr": 1e-2}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t = time.perf_counter()
    report = reconstruct(qmodel, batches, settings, device, schedule=schedule, progress=False)
    wall = time.perf_counter() - t
    handle.remove()
    rec = [r for r in report["per_unit"] if r["stage"] == "joint"]
    assert len(rec) == 1 and rec[0]["unit"] == item.unit.name, rec
    rec = rec[0]
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"model": key, "timm_or_torchvision": spec["build"]["name"], "unit": rec["unit"], "kind": rec["kind"],
            "what": spec["what"] if not unit_name else unit_name, "layers": rec["layers"],
            "iters": rec["iters"], "it_per_s": rec["it_per_s"],
            "ms_per_it": round(1000 / rec["it_per_s"], 1) if rec["it_per_s"] else None,
            "median_ms_per_it": round(1000 * statistics.median(steps), 1) if steps else None,
            "loss_before": round(rec["loss_before"], 5), "loss_after": round(rec["loss_after"], 5),
            "unit_time_s": rec["time_s"], "reconstruct_wall_s": round(wall, 1), "setup_s": round(setup_s, 1),
            "cache": report["cache"], "cache_mib": report["cache_mib"], "memory": report["memory"],
            "peak_rss_after_setup_mib": rss_setup,
            "images": num_images, "calib_images": calib_images, "batch": batch,
            "device": device if device == "cpu" else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--iters", type=int, default=100, help="iterations of the unit's loop (default 100)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--units", nargs="+", default=None, metavar="MODEL=UNIT",
                        help="another unit, e.g. swin_tiny=layers.1.blocks.1")
    parser.add_argument("--images", type=int, default=64, help="random calibration images (default 64)")
    parser.add_argument("--calib-images", type=int, default=16,
                        help="of those, how many set the quantizer ranges (default 16)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "vit_speed.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    units = dict(u.split("=", 1) for u in (args.units or []))

    if args.worker:  # child: one model, JSON on the last line of stdout
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.worker, units.get(args.worker), args.iters, args.device, args.images, 32,
                                 args.calib_images)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    t0 = time.perf_counter()
    for key in args.models:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", key, "--iters", str(args.iters),
               "--threads", str(args.threads), "--device", args.device, "--images", str(args.images),
               "--calib-images", str(args.calib_images)]
        if key in units:
            cmd += ["--units", f"{key}={units[key]}"]
        t = time.perf_counter()
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
            raise SystemExit(f"{key} failed (exit {out.returncode})")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process_wall_s"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        print(f"{key}: {row['it_per_s']} it/s ({row['process_wall_s']} s)", file=sys.stderr, flush=True)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {"what": "QDrop joint stage (AdaRound + LSQ activation steps, drop 0.5), W4A4, batch 32, one unit "
                      "per model; random weights, random calibration images "
                      f"({args.images} x 3x224x224, torch.randn, seed 0; ranges calibrated on the first {args.calib_images})",
              "device": args.device, "threads": args.threads, "iters": args.iters,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "load_avg_after": [round(x, 2) for x in load] if load else None,
              "total_wall_s": round(time.perf_counter() - t0, 1), "units": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    dev = rows[0]["device"] if rows else args.device
    print(f"\nQDrop (AdaRound + LSQ + drop 0.5), W4A4, batch 32, {args.iters} iterations, one unit per model, "
          f"on {dev} ({args.threads} threads); random weights, {args.images} random calibration images "
          f"3x224x224 (seed 0; quantizer ranges from the first {args.calib_images}); {result['total_wall_s']} s in all; "
          f"load average after the run {result['load_avg_after']}\n")
    gpu = any("device_peak_allocated_mib" in r["memory"] for r in rows)
    print("| model | unit | it/s | ms/it | median ms/it | cache (MiB) | peak RSS (MiB) |" + (" peak GPU (MiB) |" if gpu else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if gpu else ""))
    for r in rows:
        line = (f"| {r['timm_or_torchvision']} | {r['unit']} | {r['it_per_s']} | {r['ms_per_it']} | "
                f"{r['median_ms_per_it']} | {r['cache_mib']} ({r['cache']}) | {r['memory']['host_peak_rss_mib']} |")
        if gpu:
            line += f" {r['memory'].get('device_peak_allocated_mib', '')} |"
        print(line)
    print(f"\nwritten to {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
