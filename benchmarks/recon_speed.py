"""Speed and memory of the reconstruction loop.

CPU (default): iterations per second of each ResNet-18 unit at batch 32 (random weights, random
224×224 images; speed does not depend on the values), for QDrop's joint stage (AdaRound + LSQ steps +
drop) and BRECQ's weight stage (AdaRound only).
GPU (--full, when CUDA is available): the full QDrop protocol on ResNet-18 W4A4 (1024 images, batch 32,
20 000 iterations per unit, every unit), wall time and peak memory.

    OMP_NUM_THREADS=2 python benchmarks/recon_speed.py            # CPU loop speed
    python benchmarks/recon_speed.py --full --device cuda         # GPU full protocol
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


def run(method: str, num_images: int, iters: int, device: str, cache: str = "auto") -> dict:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval().to(device)
    gm = quantize(model, dict(w_bits=4, a_bits=4))
    images = torch.randn(num_images, 3, 224, 224, device=device)
    batches = list(images.split(32))
    calibrate(gm, batches[:8], progress=False)
    settings = ReconSettings.from_dict({**ReconSettings.defaults(), **PRESETS[method], "iters": iters,
                                        "cache": cache, "act_stage": dict(ReconSettings.defaults()["act_stage"],
                                                                          iters=0)})
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t = time.perf_counter()
    report = reconstruct(gm, batches, settings, device, progress=False)
    wall = time.perf_counter() - t
    rows = [{"unit": r["unit"], "kind": r["kind"], "it_per_s": r["it_per_s"]} for r in report["per_unit"]
            if r["stage"] in ("joint", "weights")]
    return {"method": method, "images": num_images, "iters": iters, "wall_s": round(wall, 1),
            "cache": report["cache"], "cache_mib": report["cache_mib"], "memory": report["memory"],
            "units": rows, "device": device if device == "cpu" else torch.cuda.get_device_name(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="full QDrop protocol (1024 images, 20 000 iters)")
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args()
    tune_cpu_allocator()
    os.makedirs(OUT, exist_ok=True)
    if args.full:
        result = [run("qdrop", 1024, 20000, args.device)]
        name = "recon_full_qdrop_resnet18.json"
    else:
        result = [run(m, 64, args.iters, args.device) for m in ("qdrop", "brecq")]
        name = "recon_speed.json"
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(result, f, indent=1)
    for r in result:
        print(f"\n{r['method']} on {r['device']} ({r['threads']} threads), batch 32, {r['images']} images, "
              f"{r['iters']} iterations/unit: {r['wall_s']} s in all; cache {r['cache']} {r['cache_mib']} MiB; "
              f"memory {r['memory']}")
        print("| unit | kind | it/s |\n|---|---|---|")
        for u in r["units"]:
            print(f"| {u['unit']} | {u['kind']} | {u['it_per_s']} |")


if __name__ == "__main__":
    main()
