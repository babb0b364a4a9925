"""Speed and memory of the reconstruction loop.

CPU (default): iterations per second of each ResNet-18 unit at batch 32 (random weights, random
224×224 images; speed does not depend on the values), for QDrop's joint stage (AdaRound + LSQ steps +
drop), BRECQ's weight stage (AdaRound only) and PD-Quant's joint stage (QDrop's loop on a batch of 2×32
plus the prediction difference through the full-precision tail); PD-Quant's one-off per-block
distribution correction is timed separately (seconds per Adam step).
GPU (--full, when CUDA is available): the full QDrop protocol on ResNet-18 W4A4 (1024 images, batch 32,
20 000 iterations per unit, every unit), wall time and peak memory.

    OMP_NUM_THREADS=2 python benchmarks/recon_speed.py            # CPU loop speed
    python benchmarks/recon_speed.py --full --device cuda         # GPU full protocol (QDrop)
    python benchmarks/recon_speed.py --full --device cuda --methods pdquant
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ptqvision  # noqa: E402,F401
import torch  # noqa: E402
import torchvision  # noqa: E402

from ptqvision.methods import PRESETS  # noqa: E402
from ptqvision.nn import calibrate, quantize  # noqa: E402
from ptqvision.recon import ReconSettings, reconstruct  # noqa: E402
from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def run(method: str, num_images: int, iters: int, device: str, cache: str = "auto", dc_iters: int = 500,
        pd_amp: str = "auto") -> dict:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval().to(device)
    gm = quantize(model, dict(w_bits=4, a_bits=4))
    images = torch.randn(num_images, 3, 224, 224, device=device)
    batches = list(images.split(32))
    calibrate(gm, batches[:8], progress=False)
    settings = ReconSettings.from_dict({**ReconSettings.defaults(), **PRESETS[method], "iters": iters,
                                        "cache": cache, "dc_iters": dc_iters, "pd_amp": pd_amp,
                                        "act_stage": dict(ReconSettings.defaults()["act_stage"], iters=0)})
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t = time.perf_counter()
    report = reconstruct(gm, batches, settings, device, progress=False, fp_model=model)
    wall = time.perf_counter() - t
    rows = [{"unit": r["unit"], "kind": r["kind"], "it_per_s": r["it_per_s"],
             "dc_s_per_step": round(r["dc"]["time_s"] / (dc_iters * len(batches)), 4) if "dc" in r else None}
            for r in report["per_unit"] if r["stage"] in ("joint", "weights")]
    return {"method": method, "pd_amp": pd_amp if settings.pd_loss else None, "images": num_images, "iters": iters,
            "dc_iters": dc_iters if settings.dc else 0,
            "wall_s": round(wall, 1),
            "cache": report["cache"], "cache_mib": report["cache_mib"], "memory": report["memory"],
            "units": rows, "device": device if device == "cpu" else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="full QDrop protocol (1024 images, 20 000 iters)")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: qdrop (--full), or qdrop brecq pdquant (CPU loop speed)")
    parser.add_argument("--dc-iters", type=int, default=None,
                        help="PD-Quant distribution-correction steps per batch (default: 500 with --full, else 20)")
    parser.add_argument("--pd-amp", default="auto", help="PD-Quant's tail precision (recon.pd_amp)")
    args = parser.parse_args()
    tune_cpu_allocator()
    os.makedirs(OUT, exist_ok=True)
    if args.full:
        methods = args.methods or ["qdrop"]
        dc = 500 if args.dc_iters is None else args.dc_iters
        result = [run(m, 1024, 20000, args.device, dc_iters=dc, pd_amp=args.pd_amp) for m in methods]
        name = f"recon_full_{'_'.join(methods)}_resnet18.json"
    else:
        methods = args.methods or ["qdrop", "brecq", "pdquant"]
        dc = 20 if args.dc_iters is None else args.dc_iters
        result = [run(m, 64, args.iters, args.device, dc_iters=dc, pd_amp=args.pd_amp) for m in methods]
        name = f"recon_speed_{'_'.join(methods)}{'' if args.pd_amp == 'auto' else '_' + args.pd_amp}.json"
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(result, f, indent=1)
    for r in result:
        tail = f" (tail {r['pd_amp']})" if r["pd_amp"] else ""
        print(f"\n{r['method']}{tail} on {r['device']} ({r['threads']} threads), batch 32, {r['images']} images, "
              f"{r['iters']} iterations/unit: {r['wall_s']} s in all; cache {r['cache']} {r['cache_mib']} MiB; "
              f"memory {r['memory']}")
        print("| unit | kind | it/s | DC s/step |\n|---|---|---|---|")
        for u in r["units"]:
            print(f"| {u['unit']} | {u['kind']} | {u['it_per_s']} | {u['dc_s_per_step'] or ''} |")
    if len(result) > 1 and result[0]["method"] == "qdrop":
        base = {u["unit"]: 1 / u["it_per_s"] for u in result[0]["units"]}
        for r in result[1:]:
            ratio = {u["unit"]: (1 / u["it_per_s"]) / base[u["unit"]] for u in r["units"] if u["unit"] in base}
            total = sum(1 / u["it_per_s"] for u in r["units"]) / sum(base.values())
            print(f"\n{r['method']} / qdrop seconds per iteration: " +
                  ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()) + f"; all units together {total:.2f}x")


if __name__ == "__main__":
    main()
