#!/usr/bin/env python
"""Create data/demo/sam_shapes/sam_tiny_shapes_points.pth: the demo SAM taught single-point prompts.

The shipped ``sam_tiny_shapes.pth`` (tools/make_sam_demo.py) was trained with box prompts and its first mask slot
only, so segment-anything's automatic mask generator (one foreground point per prompt, mask slots 1-3 read) gets
noise from it. This fine-tunes everything but the image encoder (the prompt encoder and the mask decoder) of that
model for single-point prompts on all three multimask slots, as SAM was trained: per step 4 images × 16 points,
each point drawn inside one object (or, 30 % of the time, the background region), the mask loss of the best of the
three slots (20 × focal + dice on the low-res logits) plus the MSE of each slot's predicted IoU. 1500 steps, AdamW
lr 2e-3 with a 50-step warm-up and a cosine decay, on the image embeddings of 200 generated scenes (seeds
``[0, i, 4242]``, which no shipped scene uses); 40 more scenes are held out and the log ends with their point-prompt
IoU (best slot, top-predicted slot).

It is **a small SAM trained here on synthetic shapes, not SAM**. The result is a second file: the box demo keeps
``sam_tiny_shapes.pth``; the SAM semantic demo (configs/demo/sam_shapes_semantic_*.py) loads this one.

    OMP_NUM_THREADS=1 python tools/make_sam_points_demo.py        # about 20 minutes on one loaded CPU thread
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ptqvision  # noqa: E402,F401
from make_sam_demo import encode_decode_jpeg, to_input  # noqa: E402
from ptqvision.data.shapes import MIXED_SIZES, SceneConfig, make_scene  # noqa: E402
from ptqvision.models import build_model  # noqa: E402

S = 256


def sample(masks: np.ndarray, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return n points (x, y) and their target masks' share of each low-res cell (n, S/4, S/4)."""
    pts, tg = [], []
    k_obj = len(masks) - 1
    for _ in range(n):
        k = k_obj if (rng.random() < 0.3 or k_obj == 0) else rng.integers(k_obj)
        ys, xs = np.nonzero(masks[k])
        j = rng.integers(len(xs))
        pts.append([xs[j] + 0.5, ys[j] + 0.5])
        tg.append(masks[k])
    low = torch.from_numpy(np.stack(tg)).view(n, S // 4, 4, S // 4, 4).mean(dim=(2, 4))
    return torch.tensor(pts, dtype=torch.float32), low


def losses(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor):
    """Return (the best slot's mask loss, the IoU-prediction MSE, each slot's actual IoU)."""
    prob = logits.sigmoid()
    tgt = target[:, None].expand_as(logits)
    ce = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
    p_t = prob * tgt + (1 - prob) * (1 - tgt)
    focal = (ce * (1 - p_t) ** 2).flatten(2).mean(2)
    inter = (prob * tgt).flatten(2).sum(2)
    dice = 1 - (2 * inter + 1) / (prob.flatten(2).sum(2) + tgt.flatten(2).sum(2) + 1)
    per = 20 * focal + dice  # (P, 3)
    with torch.no_grad():
        hard, truth = logits > 0, tgt > 0.5
        actual = (hard & truth).flatten(2).sum(2) / (hard | truth).flatten(2).sum(2).clamp(min=1)
    return per.min(1).values.mean(), F.mse_loss(iou_pred, actual.float()), actual


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default=os.path.join(ROOT, "data", "demo", "sam_shapes", "sam_tiny_shapes.pth"))
    p.add_argument("--out", default=os.path.join(ROOT, "data", "demo", "sam_shapes", "sam_tiny_shapes_points.pth"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = build_model(dict(type="sam", name="sam_tiny", weights=args.base))
    cfg = SceneConfig(sizes=MIXED_SIZES)
    t = time.perf_counter()
    pool = []
    for i in range(240):
        sc = make_scene(np.random.default_rng([0, i, 4242]), cfg)
        x = to_input(encode_decode_jpeg(sc.image), S)
        with torch.no_grad():
            emb = model.image_encoder(x)
        masks = np.zeros((len(sc.instances) + 1, S, S), np.float32)
        valid = np.zeros((S, S), bool)
        valid[:sc.height, :sc.width] = True
        for k, inst in enumerate(sc.instances):
            masks[k, :sc.height, :sc.width] = inst.mask
        masks[-1] = valid & ~masks[:-1].any(0)  # the background region
        pool.append((emb, masks))
    print("pool", time.perf_counter() - t, flush=True)
    for prm in model.parameters():
        prm.requires_grad_(False)
    params = [prm for n, prm in model.named_parameters() if not n.startswith("image_encoder")]
    for prm in params:
        prm.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.0)
    rng = np.random.default_rng(7)
    t = time.perf_counter()
    for step in range(args.steps):
        lr = 2e-3 * min(1, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        opt.zero_grad()
        for _ in range(4):
            emb, masks = pool[rng.integers(200)]
            pts, low = sample(masks, 16, rng)
            logits, iou = model.decode(emb, pts, multimask_output=True)
            lm, li, _ = losses(logits, iou, low)
            loss = (lm + li) / 4
            loss.backward()
            loss_sum += float(loss.detach())
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(step, round(loss_sum, 4), round(time.perf_counter() - t, 1), flush=True)
    model.eval()
    res = []
    with torch.no_grad():
        for emb, masks in pool[200:]:
            pts, low = sample(masks, 16, rng)
            logits, iou = model.decode(emb, pts, multimask_output=True)
            _, _, actual = losses(logits, iou, low)
            best = actual.max(1).values
            chosen = actual.gather(1, iou.argmax(1, keepdim=True))[:, 0]
            res.append(torch.stack([best, chosen, iou.max(1).values], 1))
    res = torch.cat(res)
    print("held-out: best-slot IoU %.3f, top-predicted slot IoU %.3f, mean top predicted IoU %.3f" % tuple(res.mean(0).tolist()))
    from ptqvision.utils.io import atomic_torch_save

    atomic_torch_save(args.out, model.state_dict())
    print("written", args.out)


if __name__ == "__main__":
    main()
