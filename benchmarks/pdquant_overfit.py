"""Does a reconstruction fit its calibration images better than unseen ones? (PD-Quant investigation)

For each work dir of a finished run (quantized.pth + the resolved config.py), compare the quantized model
with its full-precision model on three image sets: the calibration images the run used, images of the
same calibration pool that it did not use, and the validation set. Per set: mean KL(softmax(z_fp) ‖
softmax(z_q)) (the prediction-difference objective at T = 1), top-1 agreement with full precision, and
top-1 against the labels. A method that lowers the KL on the used images much more than on the unused
ones fits its calibration set rather than the task.

    OMP_NUM_THREADS=2 python benchmarks/pdquant_overfit.py benchmarks/out/pdquant_grid/mobilenet_v2_folded_w4a4_{local,pd}

Rows are merged into benchmarks/out/pdquant_overfit.json under the work dir's name.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import ptqvision  # noqa: E402,F401
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import Subset  # noqa: E402

from ptqvision.checkpoint import load_into, load_quantized  # noqa: E402
from ptqvision.config import load_config  # noqa: E402
from ptqvision.data.imagenet import build_loader, build_transform, sample_calibration  # noqa: E402
from ptqvision.nn import check_ready  # noqa: E402
from ptqvision.runner import build_dataset, build_quantized  # noqa: E402
from ptqvision.utils.io import atomic_write_json  # noqa: E402
from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402


@torch.no_grad()
def compare(fp_model, qmodel, dataset, batch_size: int = 50) -> dict:
    kl = agree = correct = n = 0
    for x, y in build_loader(dataset, batch_size):
        zf, zq = fp_model(x), qmodel(x)
        kl += float(F.kl_div(F.log_softmax(zq, 1), F.softmax(zf, 1), reduction="sum"))
        agree += int((zf.argmax(1) == zq.argmax(1)).sum())
        correct += int((zq.argmax(1) == y).sum())
        n += x.shape[0]
    return {"images": n, "kl": round(kl / n, 4), "agree_fp": round(100 * agree / n, 2),
            "top1": round(100 * correct / n, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dirs", nargs="+")
    parser.add_argument("--unseen", type=int, default=256, help="unused calibration-pool images to compare on")
    parser.add_argument("--val", type=int, default=300, help="validation images (the first, by path)")
    args = parser.parse_args()
    tune_cpu_allocator()
    path = os.path.join(ROOT, "benchmarks", "out", "pdquant_overfit.json")
    out = json.load(open(path)) if os.path.isfile(path) else {}
    for wd in args.work_dirs:
        cfg, _ = load_config(os.path.join(wd, "config.py"))
        fp_model, qmodel, pre = build_quantized(cfg)
        load_into(qmodel, load_quantized(os.path.join(wd, "quantized.pth")))
        check_ready(qmodel)
        fp_model.eval()
        transform = build_transform(pre)
        pool = build_dataset(cfg, "calib", transform)
        used, _ = sample_calibration(pool, cfg["calib"]["num_samples"], cfg["calib"]["seed"])
        rest = [i for i in range(len(pool)) if i not in set(used.indices)]
        g = torch.Generator().manual_seed(0)
        unseen = Subset(pool, sorted(rest[i] for i in torch.randperm(len(rest), generator=g)[:args.unseen].tolist()))
        val = build_dataset(cfg, "val", transform)
        val = Subset(val, list(range(min(args.val, len(val)))))
        row = {name: compare(fp_model, qmodel, ds) for name, ds in
               (("calib_used", used), ("calib_unseen", unseen), ("val", val))}
        out[os.path.basename(os.path.normpath(wd))] = row
        print(os.path.basename(os.path.normpath(wd)), json.dumps(row), flush=True)
        atomic_write_json(path, out)


if __name__ == "__main__":
    main()
