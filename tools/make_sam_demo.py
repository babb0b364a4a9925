#!/usr/bin/env python
"""Create data/demo/sam_shapes/: generated COCO-format shapes data and a small SAM trained on such shapes.

The model is a small SAM (``sam_tiny``: segment-anything's own ImageEncoderViT, PromptEncoder and
MaskDecoder, the code path of SAM-B) trained here on synthetic shapes. It is **not SAM**: its numbers say
nothing about SAM on COCO.

Writes into ``--out``:
- ``val/`` (64 images) and ``train/`` (48 images, for calibration), each with ``instances_<split>.json``
  (RLE masks) and a simulated detector's results ``detections_<split>.json`` (``ptqvision.data.shapes``);
- ``sam_tiny_shapes.pth``: the state dict of the trained ``SamBoxModel`` (``torch.load(weights_only=True)``;
  ``build_model(dict(type='sam', name='sam_tiny', weights=PATH))`` loads it);
- ``train_log.txt``: the training log (losses, held-out IoU, timings).

Training: a stream of scenes generated on the fly with seeds that the shipped images never use; prompts are
ground-truth boxes with jitter; single-mask output (mask slot 0, IoU slot 0, ``multimask_output=False``, as
ptqvision runs SAM); loss as SAM's: 20 × focal + dice on the low-res (S/4) mask logits against the GT mask's
share of each cell, plus the MSE between the predicted IoU and the IoU of the thresholded prediction; AdamW with
linear warm-up and cosine decay. Before that, ``--box-warmup`` steps train the prompt encoder and mask decoder
alone to fill random boxes on a zero image embedding: from scratch, the decoder otherwise takes longer to learn
where a box is than this budget allows (pilots of up to 550 steps stayed at IoU 0.1 or less, the focal term driving
every logit negative), while after the warm-up the full model learns the shapes.
At the end it prints the sha256 of every file and the FP quality on ``val``: mean mask IoU for GT boxes and for
the detector's boxes that hit a GT box.

Usage: OMP_NUM_THREADS=1 python tools/make_sam_demo.py [--out DIR] [--steps N] [--seed S] [--threads T]
       [--data-only | --eval-only]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DEFAULT_OUT = REPO_ROOT / "data" / "demo" / "sam_shapes"
WEIGHTS_NAME = "sam_tiny_shapes.pth"
SPLITS = {"val": 64, "train": 48}  # images per shipped split
# Seeds of the shipped splits and detector files, offset from 1000 * --seed (split scene i comes from
# default_rng([split seed, i])). The training stream draws batch ``step`` from default_rng([seed, step,
# TRAIN_STREAM]): three words with a non-zero last one, which no two-word seed can equal (numpy's SeedSequence
# ignores trailing zero words, so the tag must be last and non-zero).
SPLIT_SEED = {"val": 1, "train": 2}
DETECTOR_SEED = {"val": 11, "train": 12}
TRAIN_STREAM, MONITOR_STREAM = 9, 8


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shown(path: Path) -> str:
    """Return ``path`` relative to the repository when it lies inside it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


# ------------------------------------------------------------------------------------------------- data
def write_data(out: Path, seed: int) -> dict[str, Any]:
    """Write the shipped splits and detector files; return their statistics per split."""
    from ptqvision.data.shapes import MIXED_SIZES, SceneConfig, match_detections, write_coco_split, write_detections

    config = SceneConfig(sizes=MIXED_SIZES)
    stats: dict[str, Any] = {}
    for split, num_images in SPLITS.items():
        gt_path = write_coco_split(out, split, num_images, 1000 * seed + SPLIT_SEED[split], config)
        det_path = write_detections(gt_path, out / f"detections_{split}.json", 1000 * seed + DETECTOR_SEED[split])
        gt, dets = json.loads(gt_path.read_text()), json.loads(det_path.read_text())
        hits = match_detections(gt, dets)
        sizes: dict[str, int] = {}
        for img in gt["images"]:
            key = f"{img['width']}x{img['height']}"
            sizes[key] = sizes.get(key, 0) + 1
        per_category = {c["name"]: sum(a["category_id"] == c["id"] for a in gt["annotations"])
                        for c in gt["categories"]}
        stats[split] = {"images": len(gt["images"]), "instances": len(gt["annotations"]),
                        "per_category": per_category, "detections": len(dets),
                        "false_positives": int((~hits).sum()), "false_positive_share": round(float((~hits).mean()), 3),
                        "detector_box_mAP": round(box_map(gt_path, dets), 2), "sizes_wxh": sizes}
        print(f"{split}: {stats[split]}")
    return stats


def box_map(gt_path: Path, dets: list[dict[str, Any]]) -> float:
    """Return the simulated detector's COCO box mAP (percent, maxDets 100) against the ground truth."""
    import contextlib

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(dets), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]) * 100


def encode_decode_jpeg(image: Any, quality: int = 90) -> Any:
    """Return ``image`` (H, W, 3 uint8) after a JPEG round trip, as the shipped images are stored."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=0)
    buffer.seek(0)
    return np.array(Image.open(buffer).convert("RGB"))


def to_input(image: Any, size: int) -> Any:
    """Return the model input (1, 3, size, size): SAM's normalisation and bottom/right zero padding of an image
    whose longest side is already ``size`` (every image here has longest side 256 = sam_tiny's input)."""
    import numpy as np
    import torch

    from ptqvision.models.registry import IMAGENET_MEAN, IMAGENET_STD

    h, w = image.shape[:2]
    if max(h, w) != size:
        raise ValueError(f"image {w}x{h} does not have longest side {size}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return torch.nn.functional.pad(x, (0, size - w, 0, size - h)).unsqueeze(0)


def xyxy(boxes: Any) -> Any:
    """Return x y w h boxes (N, 4) as x0 y0 x1 y1 float32 tensors (the prompt encoder's form)."""
    import torch

    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)


def training_stream(seed: int, batch_images: int, prompts: int, size: int) -> Iterator[tuple[Any, list]]:
    """Yield batches ``(images (B, 3, S, S), [(boxes (P, 4) xyxy, masks (P, S, S) float), ...])`` of scenes
    generated from ``[seed, step, TRAIN_STREAM]``; boxes are GT boxes jittered like a detector's (one in four
    tight, one in eight jittered three times as much)."""
    import numpy as np
    import torch

    from ptqvision.data.shapes import MIXED_SIZES, DetectorConfig, SceneConfig, jitter_boxes, make_scene

    config, det = SceneConfig(sizes=MIXED_SIZES), DetectorConfig()
    step = 0
    while True:
        rng = np.random.default_rng([seed, step, TRAIN_STREAM])
        images, targets = [], []
        for _ in range(batch_images):
            scene = make_scene(rng, config)
            images.append(to_input(encode_decode_jpeg(scene.image), size))
            # Each instance at least once; an image with fewer instances than prompts repeats them with
            # other jitters, so the decoder sees more prompts per encoded image.
            order = rng.permutation(len(scene.instances))
            picks = np.concatenate([order, rng.integers(len(order), size=max(prompts - len(order), 0))])[:prompts]
            gt_boxes = np.array([scene.instances[i].bbox for i in picks])
            factor = rng.choice([0.0, 1.0, 3.0], p=[0.25, 0.625, 0.125], size=len(picks))
            boxes = np.stack([jitter_boxes(rng, b, scene.width, scene.height, det.position_jitter * f,
                                           det.scale_jitter * f)[0] for b, f in zip(gt_boxes, factor)])
            masks = np.zeros((len(picks), size, size), dtype=np.float32)
            for k, i in enumerate(picks):
                masks[k, :scene.height, :scene.width] = scene.instances[i].mask
            # Targets at the decoder's output size (S/4): each cell holds the GT share of its 4x4 pixels.
            low = torch.from_numpy(masks).view(len(picks), size // 4, 4, size // 4, 4).mean(dim=(2, 4))
            targets.append((xyxy(boxes), low))
        yield torch.cat(images), targets
        step += 1


# ------------------------------------------------------------------------------------------------ model
def sam_losses(logits: Any, iou_pred: Any, target: Any) -> tuple[Any, Any, Any]:
    """Return (focal, dice, IoU MSE) of low-res mask logits (P, 1, h, w) against soft targets (P, h, w) (the GT
    mask's share of each low-res cell); the IoU target is the IoU of the thresholded prediction."""
    import torch
    import torch.nn.functional as F

    x = logits[:, 0]
    prob = x.sigmoid()
    # Focal loss (gamma 2) as in SAM; without SAM's alpha = 0.25, which down-weights the object pixels and
    # made a short from-scratch run settle on "no mask" in a pilot.
    ce = F.binary_cross_entropy_with_logits(x, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    focal = (ce * (1 - p_t) ** 2).mean()
    inter = (prob * target).flatten(1).sum(1)
    dice = (1 - (2 * inter + 1) / (prob.flatten(1).sum(1) + target.flatten(1).sum(1) + 1)).mean()
    with torch.no_grad():
        hard, truth = x > 0, target > 0.5
        actual_iou = (hard & truth).flatten(1).sum(1) / (hard | truth).flatten(1).sum(1).clamp(min=1)
    iou_mse = F.mse_loss(iou_pred[:, 0], actual_iou.float())
    return focal, dice, iou_mse


def lr_at(step: int, steps: int, warmup: int, peak: float) -> float:
    """Return the learning rate at ``step``: linear warm-up to ``peak``, then cosine decay to 1% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(steps - warmup, 1)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def predict_masks(model: Any, image: Any, boxes_xywh: Any) -> tuple[Any, Any]:
    """Return (boolean masks (P, H, W), predicted IoU (P,)) for boxes (P, 4, x y w h) on one image (H, W, 3),
    postprocessed as segment-anything does (upsample to S, crop the padding, threshold at 0)."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape[:2]
    size = model.image_size
    with torch.no_grad():
        logits, iou = model(to_input(image, size), xyxy(boxes_xywh))
        up = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)[:, 0, :h, :w]
    return (up > 0).numpy(), iou[:, 0].numpy()


def mask_iou(a: Any, b: Any) -> float:
    """Return the IoU of two boolean masks."""
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def monitor_iou(model: Any, seed: int, count: int = 24) -> float:
    """Return the mean mask IoU with tight GT boxes on ``count`` held-out generated scenes (not shipped)."""
    import numpy as np

    from ptqvision.data.shapes import MIXED_SIZES, SceneConfig, make_scene

    config, ious = SceneConfig(sizes=MIXED_SIZES), []
    for i in range(count):
        scene = make_scene(np.random.default_rng([seed, i, MONITOR_STREAM]), config)
        image = encode_decode_jpeg(scene.image)
        masks, _ = predict_masks(model, image, [inst.bbox for inst in scene.instances])
        ious += [mask_iou(m, inst.mask) for m, inst in zip(masks, scene.instances)]
    return float(np.mean(ious))


def box_warmup(model: Any, args: argparse.Namespace, note: Callable[[str], None]) -> None:
    """Train the prompt encoder and mask decoder for ``args.box_warmup`` steps to fill random boxes (16 per step,
    sides 20-140 px) on a zero image embedding, with dice + focal: this teaches the decoder where a box is, which
    it otherwise learns too slowly from scratch. The IoU head and the image encoder are left as they are."""
    import torch

    if args.box_warmup <= 0:
        return
    params = [p for n, p in model.named_parameters()
              if n.startswith(("prompt_encoder.", "mask_decoder.")) and "iou_prediction_head" not in n]
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.0)
    size = model.image_size
    generator = torch.Generator().manual_seed(args.seed)
    embedding = torch.zeros(1, model.prompt_encoder.embed_dim, *model.prompt_encoder.image_embedding_size)
    centres = torch.arange(size // 4, dtype=torch.float32) * 4 + 1.5  # pixel centres of the low-res cells
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    start, ious = time.perf_counter(), []
    for step in range(args.box_warmup):
        centre = torch.rand(16, 2, generator=generator) * size
        side = 20 + torch.rand(16, 2, generator=generator) * 120
        boxes = torch.cat([centre - side / 2, centre + side / 2], dim=1).clamp(0, size)
        target = ((xx >= boxes[:, 0, None, None]) & (xx < boxes[:, 2, None, None])
                  & (yy >= boxes[:, 1, None, None]) & (yy < boxes[:, 3, None, None])).float()
        logits, iou = model.decode(embedding, boxes)
        focal, dice, _ = sam_losses(logits, iou, target)
        optimizer.zero_grad(set_to_none=True)
        (focal + dice).backward()
        optimizer.step()
        with torch.no_grad():
            hard, truth = logits[:, 0] > 0, target > 0.5
            union = (hard | truth).flatten(1).sum(1).clamp(min=1)
            ious.append(float(((hard & truth).flatten(1).sum(1) / union).mean()))
        if (step + 1) % 100 == 0 or step + 1 == args.box_warmup:
            note(f"# box warm-up {step + 1:4d}  focal {float(focal.detach()):.4f}  dice {float(dice.detach()):.4f}  "
                 f"box IoU {sum(ious) / len(ious):.3f}  {time.perf_counter() - start:6.1f} s")
            ious = []


def train(out: Path, args: argparse.Namespace) -> Path:
    """Train sam_tiny on the generated stream; write the weights and the log; return the weights' path."""
    import torch
    from tqdm import tqdm

    from ptqvision.models import build_model

    model, _ = build_model(dict(type="sam", name="sam_tiny", weights="random", seed=args.seed))
    torch.manual_seed(args.seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and "pos" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.999))
    log_path = out / "train_log.txt"
    log = log_path.open("w")

    def note(line: str) -> None:
        log.write(line + "\n")
        log.flush()
        tqdm.write(line)

    note(f"# sam_tiny on generated shapes: steps {args.steps}, {args.batch_images} images x {args.prompts} prompts "
         f"per step, peak lr {args.lr}, lr warm-up {args.warmup}, loss 20*focal + dice + iou_mse, seed {args.seed}, "
         f"threads {torch.get_num_threads()}")
    box_warmup(model, args, note)
    note("# step  lr  focal  dice  iou_mse  (means over the interval)  elapsed_s  [held-out mean IoU, tight GT boxes]")
    stream = training_stream(args.seed, args.batch_images, args.prompts, model.image_size)
    sums, count, start = [0.0, 0.0, 0.0], 0, time.perf_counter()
    bar = tqdm(range(args.steps), desc="train", dynamic_ncols=True, mininterval=5)
    for step in bar:
        images, targets = next(stream)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.warmup, args.lr)
        embeddings = model.image_encoder(images)
        parts = [torch.zeros(()) for _ in range(3)]
        for b, (boxes, masks) in enumerate(targets):  # the decoder takes one image's prompts at a time
            logits, iou = model.decode(embeddings[b:b + 1], boxes)
            for k, value in enumerate(sam_losses(logits, iou, masks)):
                parts[k] = parts[k] + value / len(targets)
        loss = 20 * parts[0] + parts[1] + parts[2]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        sums = [s + float(p.detach()) for s, p in zip(sums, parts)]
        count += 1
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        last = step + 1 == args.steps
        if (step + 1) % args.log_every == 0 or last:
            focal, dice, iou_mse = (s / count for s in sums)
            line = (f"{step + 1:6d}  {optimizer.param_groups[0]['lr']:.2e}  {focal:.4f}  {dice:.4f}  {iou_mse:.4f}  "
                    f"{time.perf_counter() - start:8.1f}")
            if (step + 1) % args.monitor_every == 0 or last:
                model.eval()
                line += f"  held-out IoU {monitor_iou(model, args.seed):.4f}"
                model.train()
            note(line)
            sums, count = [0.0, 0.0, 0.0], 0
    note(f"# training time {time.perf_counter() - start:.1f} s")
    log.close()
    model.eval()
    weights = out / WEIGHTS_NAME
    torch.save({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, weights)
    return weights


# ------------------------------------------------------------------------------------------- evaluation
def evaluate(out: Path, weights: Path) -> dict[str, Any]:
    """Return the FP quality of the saved weights on the shipped val split, loaded from the files: mean mask
    IoU for GT boxes, and for detector boxes with box IoU >= 0.5 to a GT box of their image (its best match)."""
    import numpy as np
    from PIL import Image

    from ptqvision.data.shapes import box_iou
    from ptqvision.models import build_model

    model, _ = build_model(dict(type="sam", name="sam_tiny", weights=str(weights)))
    gt = json.loads((out / "instances_val.json").read_text())
    dets = json.loads((out / "detections_val.json").read_text())
    from pycocotools import mask as mask_utils

    gt_ious, det_ious, pred_err, start = [], [], [], time.perf_counter()
    for img in gt["images"]:
        image = np.array(Image.open(out / "val" / img["file_name"]).convert("RGB"))
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        gt_masks = [mask_utils.decode(a["segmentation"]).astype(bool) for a in anns]
        masks, iou_pred = predict_masks(model, image, [a["bbox"] for a in anns])
        actual = [mask_iou(m, g) for m, g in zip(masks, gt_masks)]
        gt_ious += actual
        pred_err += list(np.abs(iou_pred - np.array(actual)))
        boxes = [d["bbox"] for d in dets if d["image_id"] == img["id"]]
        if boxes and anns:
            overlap = box_iou(np.array(boxes), np.array([a["bbox"] for a in anns]))
            masks, _ = predict_masks(model, image, boxes)
            for m, row in zip(masks, overlap):
                if row.max() >= 0.5:
                    det_ious.append(mask_iou(m, gt_masks[int(row.argmax())]))
    result = {"mean_iou_gt_boxes": float(np.mean(gt_ious)), "gt_boxes": len(gt_ious),
              "share_iou_ge_0.8_gt_boxes": float(np.mean(np.array(gt_ious) >= 0.8)),
              "mean_iou_detector_boxes": float(np.mean(det_ious)), "detector_boxes_matched": len(det_ious),
              "mean_abs_iou_prediction_error": float(np.mean(pred_err)),
              "time_s": round(time.perf_counter() - start, 1)}
    result.update(segm_map(out, weights))
    print(f"FP quality on val (small model trained here on synthetic shapes, not SAM): {result}")
    return result


def segm_map(out: Path, weights: Path) -> dict[str, Any]:
    """Return the FP segm mAP (percent, pycocotools, maxDets 100) on val through ptqvision's coco_instance task,
    with the detector's boxes and with the GT boxes (score 1: the masks' own ceiling); {} without the task."""
    import copy
    import tempfile

    import torch

    try:
        from ptqvision.tasks.instance_segmentation import CocoInstanceTask
    except ImportError:  # the task is another part of the project; the IoUs above do not need it
        return {}
    from ptqvision.models import build_model

    model, preprocess = build_model(dict(type="sam", name="sam_tiny", weights=str(weights)))
    gt = json.loads((out / "instances_val.json").read_text())
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        gt_dets = Path(tmp) / "gt_boxes_val.json"
        gt_dets.write_text(json.dumps([{"image_id": a["image_id"], "category_id": a["category_id"],
                                        "bbox": a["bbox"], "score": 1.0} for a in gt["annotations"]]))
        for name, det_file in (("detector", out / "detections_val.json"), ("gt_boxes", gt_dets)):
            cfg = {"task": {"type": "coco_instance", **copy.deepcopy(CocoInstanceTask.defaults)},
                   "data": {"val": {"type": "coco", "root": str(out / "val"),
                                    "ann_file": str(out / "instances_val.json"), "det_file": str(det_file)},
                            "calib": {"type": "coco", "root": str(out / "train"),
                                      "ann_file": str(out / "instances_train.json"),
                                      "det_file": str(out / "detections_train.json")}},
                   "calib": {"num_samples": 1, "seed": 0}}
            metrics = CocoInstanceTask(cfg, preprocess).evaluator(torch.device("cpu"), progress=False).evaluate(model)
            result[f"segm_mAP_{name}"] = round(metrics["segm_mAP"], 2)
            result[f"segm_mAP_50_{name}"] = round(metrics["segm_mAP_50"], 2)
            result[f"segm_mAP_75_{name}"] = round(metrics["segm_mAP_75"], 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {shown(DEFAULT_OUT)})")
    parser.add_argument("--steps", type=int, default=2600, help="training steps (default 2600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the stream and the init (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--batch-images", type=int, default=3, help="images per step (default 3)")
    parser.add_argument("--prompts", type=int, default=5, help="box prompts per image (default 5)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--warmup", type=int, default=30, help="learning-rate warm-up steps (default 30)")
    parser.add_argument("--box-warmup", type=int, default=600,
                        help="decoder warm-up steps on random boxes before the training (default 600)")
    parser.add_argument("--log-every", type=int, default=50, help="log interval in steps (default 50)")
    parser.add_argument("--monitor-every", type=int, default=250,
                        help="held-out IoU interval in steps (default 250)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--data-only", action="store_true", help="write the data files only")
    mode.add_argument("--eval-only", action="store_true", help="evaluate the existing weights only")
    args = parser.parse_args()

    import ptqvision  # noqa: F401  (before torchvision / segment_anything)
    import torch

    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    if not args.eval_only:
        write_data(out, args.seed)
    if not args.data_only:
        weights = out / WEIGHTS_NAME if args.eval_only else train(out, args)
        evaluate(out, weights)
    # Every file's digest, also written as SHA256SUMS (check with: cd DIR && sha256sum -c SHA256SUMS).
    sums = out / "SHA256SUMS"
    lines = [f"{sha256(path)}  {path.relative_to(out).as_posix()}"
             for path in sorted(out.rglob("*")) if path.is_file() and path.name not in ("SHA256SUMS", "README.md")]
    sums.write_text("\n".join(lines) + "\n")
    for path in sorted(p for p in out.iterdir() if p.is_file()):
        print(f"{shown(path)}  {path.stat().st_size:>9d} bytes  sha256 {sha256(path)}")
    for line in lines:
        if "/" in line.split("  ", 1)[1]:
            print(f"  {line}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{shown(out)}: {len(lines) + 1} files, {size} bytes")
    print(f"total time {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
