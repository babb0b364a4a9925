#!/usr/bin/env python
"""Make the semantic-segmentation demo (data/demo/seg_shapes): generated scenes of textured shapes
(ptqvision/data/shapes.py; one class per shape kind plus background, 7 classes), a small per-pixel classifier
(``seg_shapes_net``, ptqvision/models/segmentation.py) trained here from scratch, and its full-precision score.

**A small model trained here on synthetic data**: its numbers say nothing about real segmentation benchmarks.

Written under ``--out``:

- ``val/`` and ``calib/``: ``images/<id:06d>.jpg`` (JPEG quality 90, 4:4:4) and ``labels/<id:06d>.png`` (palette
  PNGs whose indices are the classes: 0 background, 1..6 the shape kinds of ``SHAPE_KINDS``), listed in
  ``val.txt`` / ``calib.txt`` (``image_path label_path`` per line, relative to ``--out``); scene i of a split is
  ``split_scene(1000 * seed + SPLIT_SEED[split], i - 1, SCENES)`` at the SAM demo's mixed sizes (256x256, 192x256,
  256x192), shapes of radius 0.1..0.3 of the short side, 1..4 per scene, each at least 70 % visible;
- ``classes.txt``: the class names, one per line;
- ``seg_shapes_net.pth``: the trained state dict (float32, loads with ``torch.load(..., weights_only=True)``);
- ``training.json``: seeds, steps, timings, losses, the validation metrics and the files' sha256.

Training: ``--pool`` scenes generated once, scene k from ``default_rng([seed, k, TRAIN_STREAM])`` (three words: no
shipped scene, drawn from two-word seeds, can repeat one), preprocessed as the demo protocol evaluates (long side to
128, ratio kept), labels resized with nearest to the network's input for the loss; batches drawn from the pool with
random ``--crop`` x ``--crop`` windows (96), flips and transposes; AdamW with warm-up and a cosine schedule,
cross-entropy weighted by 1 / sqrt(class pixel frequency). One CPU thread.

Usage (from the repository root): OMP_NUM_THREADS=1 python tools/make_seg_demo.py [--out DIR] [--steps N]
[--pool N] [--batch B] [--seed S] [--data-only] [--time-steps K]
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import ptqvision  # noqa: E402,F401  (before torchvision)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ptqvision.data.segmentation import LabelRules, SegEvalSet, SegPreprocess, scan_split  # noqa: E402
from ptqvision.data.shapes import MIXED_SIZES, SHAPE_KINDS, SceneConfig, make_scene, semantic_label_map, split_scene  # noqa: E402
from ptqvision.eval.segmentation import InferenceSettings, SegmentationEvaluator  # noqa: E402
from ptqvision.models.registry import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from ptqvision.models.segmentation import ShapesSegNet  # noqa: E402
from ptqvision.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text  # noqa: E402

CLASS_NAMES: tuple[str, ...] = ("background",) + SHAPE_KINDS
SPLITS = {"val": 64, "calib": 64}
SPLIT_SEED = {"val": 101, "calib": 102}  # offsets from 1000 * --seed (the SAM demo uses other offsets)
TRAIN_STREAM = 7
# every setting spelled out (the shipped files must not follow a change of SceneConfig's defaults): at most 4
# shapes per scene, each keeping 70 % of itself visible (a shape mostly hidden has no kind to see), radius 0.1..0.3
# of the short side (at the protocol's 128 px at least ~10 px)
SCENES = SceneConfig(sizes=MIXED_SIZES, min_objects=1, max_objects=4, min_radius=0.1, max_radius=0.3,
                     min_visible_area=120, min_visible_fraction=0.7, placement_tries=25, pixel_noise=0.015)
PROTOCOL_RESIZE = (128, 128)  # mmseg-style scale with the ratio kept: the long side becomes 128
# a palette for viewing the label PNGs (index = class); the indices, not these colours, are the labels
PALETTE = [0, 0, 0, 230, 25, 75, 60, 180, 75, 255, 225, 25, 0, 130, 200, 245, 130, 48, 145, 30, 180]


def protocol() -> SegPreprocess:
    """Return the demo's preprocessing: long side to 128 (ratio kept), bilinear, ImageNet mean/std."""
    return SegPreprocess(resize=PROTOCOL_RESIZE, keep_ratio=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def write_semantic_split(out: Path, split: str, num_images: int, seed: int,
                         config: SceneConfig = SCENES) -> Path:
    """Write scenes ``split_scene(seed, i)`` as ``out/<split>/images/<id>.jpg`` and palette label maps
    ``out/<split>/labels/<id>.png`` (ids from 1), and the list file ``out/<split>.txt``; return the list file."""
    from PIL import Image

    images, labels = out / split / "images", out / split / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(1, num_images + 1):
        scene = split_scene(seed, i - 1, config)
        name = f"{i:06d}"
        Image.fromarray(scene.image).save(images / f"{name}.jpg", quality=90, subsampling=0)
        label = Image.fromarray(semantic_label_map(scene))
        label.putpalette(PALETTE)  # an L image becomes P: indices unchanged, the palette only for viewing
        label.save(labels / f"{name}.png", optimize=True)
        lines.append(f"{split}/images/{name}.jpg {split}/labels/{name}.png")
    path = out / f"{split}.txt"
    atomic_write_text(str(path), "\n".join(lines) + "\n")
    return path


def write_data(out: Path, seed: int) -> dict[str, Any]:
    """Write both splits and classes.txt; return {split: {num_images, seed}}."""
    out.mkdir(parents=True, exist_ok=True)
    record = {}
    for split, n in SPLITS.items():
        write_semantic_split(out, split, n, 1000 * seed + SPLIT_SEED[split])
        record[split] = {"num_images": n, "seed": 1000 * seed + SPLIT_SEED[split]}
    atomic_write_text(str(out / "classes.txt"), "\n".join(CLASS_NAMES) + "\n")
    return record


def training_pool(seed: int, size: int, pre: SegPreprocess) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return ``size`` training scenes, scene k drawn from ``[seed, k, TRAIN_STREAM]``, preprocessed as the demo
    protocol evaluates: (image (3, h, w) float16, labels (h, w) uint8 resized with nearest: the loss needs targets
    at the input's size, which evaluation never does)."""
    pool = []
    for k in range(size):
        scene = make_scene(np.random.default_rng([seed, k, TRAIN_STREAM]), SCENES)
        x = pre.tensor(scene.image)
        y = torch.from_numpy(semantic_label_map(scene))
        y = F.interpolate(y[None, None].float(), size=x.shape[1:], mode="nearest")[0, 0].to(torch.uint8)
        pool.append((x.half(), y))
    return pool


def class_weights(pool: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Return cross-entropy weights 1 / sqrt(pixel frequency) over the pool, background scaled to 1 (the shapes
    cover a few percent of the pixels each; unweighted, a short training leaves them under-predicted)."""
    counts = sum(torch.bincount(y.flatten().long(), minlength=len(CLASS_NAMES)) for _, y in pool).double()
    w = (counts / counts.sum()).clamp(min=1e-6).rsqrt()
    return (w / w[0]).float()


def training_batches(pool: list[tuple[torch.Tensor, torch.Tensor]], batch: int, crop: int,
                     seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield batches (images (B, 3, crop, crop), labels (B, crop, crop) int64, 255 = padding) forever: scenes drawn
    from the pool with ``seed``, each cut to a random crop x crop window, flipped and transposed at random."""
    g = torch.Generator().manual_seed(seed)
    while True:
        xs, ys = [], []
        for k in torch.randint(0, len(pool), (batch,), generator=g).tolist():
            x, y = pool[k][0].float(), pool[k][1].long()
            top = int(torch.randint(0, max(x.shape[1] - crop, 0) + 1, (1,), generator=g))
            left = int(torch.randint(0, max(x.shape[2] - crop, 0) + 1, (1,), generator=g))
            x, y = x[:, top:top + crop, left:left + crop], y[top:top + crop, left:left + crop]
            flips = torch.randint(0, 2, (3,), generator=g).tolist()
            if flips[0]:
                x, y = x.flip(-1), y.flip(-1)
            if flips[1]:
                x, y = x.flip(-2), y.flip(-2)
            if flips[2]:
                x, y = x.transpose(-1, -2), y.transpose(-1, -2)
            ph, pw = crop - x.shape[1], crop - x.shape[2]
            xs.append(F.pad(x, (0, pw, 0, ph)))
            ys.append(F.pad(y, (0, pw, 0, ph), value=255))
        yield torch.stack(xs), torch.stack(ys)


def evaluate(model: torch.nn.Module, out: Path, split: str = "val") -> dict:
    """Return the demo protocol's metrics of ``model`` on ``out/<split>.txt`` (whole-image inference)."""
    data = scan_split({"type": "list", "list_file": str(out / f"{split}.txt")}, f"{split}")
    rules = LabelRules(len(CLASS_NAMES))
    loader = SegEvalSet(data, data.samples, protocol(), rules)
    evaluator = SegmentationEvaluator(loader, len(CLASS_NAMES), CLASS_NAMES, InferenceSettings(), progress=False,
                                      names=[s.label for s in data.samples])
    return evaluator.evaluate(model)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "data" / "demo" / "seg_shapes"))
    p.add_argument("--steps", type=int, default=2200, help="training steps (default 2200)")
    p.add_argument("--crop", type=int, default=96, help="training crop size (default 96)")
    p.add_argument("--pool", type=int, default=2400, help="training scenes generated once (default 2400)")
    p.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the stream and the init (default 0)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-only", action="store_true", help="write the splits and stop")
    p.add_argument("--time-steps", type=int, default=0, help="time this many steps, print the step time, stop")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    data_record = write_data(out, args.seed)
    print(f"data: {data_record} in {time.perf_counter() - t0:.1f}s", flush=True)
    if args.data_only:
        return 0

    t = time.perf_counter()
    pool = training_pool(args.seed, args.time_steps * args.batch or args.pool, protocol())
    pool_s = time.perf_counter() - t
    weights = class_weights(pool)
    print(f"training pool: {len(pool)} scenes in {pool_s:.0f}s; class weights "
          + ", ".join(f"{n} {w:.2f}" for n, w in zip(CLASS_NAMES, weights.tolist())), flush=True)
    torch.manual_seed(args.seed)
    model = ShapesSegNet(len(CLASS_NAMES), args.width)
    steps = args.time_steps or args.steps
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    stream = training_batches(pool, args.batch, args.crop, args.seed)
    model.train()
    losses, t_data, t_step = [], 0.0, 0.0
    t_train = time.perf_counter()
    for step in range(steps):
        t = time.perf_counter()
        x, y = next(stream)
        t_data += time.perf_counter() - t
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y, weight=weights, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        t_step += time.perf_counter() - t
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == steps or args.time_steps:
            print(f"step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f} lr {sched.get_last_lr()[0]:.2e} "
                  f"data {t_data / (step + 1):.3f}s/step compute {t_step / (step + 1):.3f}s/step", flush=True)
    train_s = time.perf_counter() - t_train
    if args.time_steps:
        return 0
    model.eval()
    metrics = evaluate(model, out)
    weights_path = out / "seg_shapes_net.pth"
    atomic_torch_save(str(weights_path), {k: v.detach().clone() for k, v in model.state_dict().items()})
    files = sorted(f for f in out.rglob("*") if f.is_file() and f.name != "training.json" and f.name != "README.md")
    record = {
        "note": "a small model trained here on synthetic shapes, not a real segmentation benchmark",
        "command": "OMP_NUM_THREADS=1 python tools/make_seg_demo.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed, "splits": data_record, "scene_config": asdict(SCENES),
        "train_pool": {"scenes": len(pool), "seeds": f"default_rng([{args.seed}, k, {TRAIN_STREAM}]), k < {len(pool)}",
                       "time_s": round(pool_s, 1)},
        "class_weights": dict(zip(CLASS_NAMES, [round(w, 4) for w in weights.tolist()])),
        "steps": steps, "batch": args.batch, "crop": args.crop, "lr": args.lr, "width": args.width, "threads": torch.get_num_threads(),
        "train_time_s": round(train_s, 1), "data_time_s": round(t_data, 1),
        "final_loss": float(np.mean(losses[-50:])),
        "parameters": sum(p.numel() for p in model.parameters()),
        "val_fp": {k: v for k, v in metrics.items()},
        "weights_sha256": sha256(weights_path),
        "total_bytes": sum(f.stat().st_size for f in files),
        "list_sha256": {split: sha256(out / f"{split}.txt") for split in SPLITS},
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    atomic_write_json(str(out / "training.json"), record)
    print(f"trained {steps} steps in {train_s:.0f}s; FP on val: mIoU {metrics['mIoU']:.2f} mAcc {metrics['mAcc']:.2f} "
          f"aAcc {metrics['aAcc']:.2f}", flush=True)
    print("per-class IoU: " + ", ".join(f"{k} {v:.1f}" if v is not None else f"{k} -" for k, v in metrics["per_class"].items()))
    print(f"weights {weights_path} sha256 {record['weights_sha256']}; {record['total_bytes']} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
