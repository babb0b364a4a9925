"""COCO instance-segmentation mAP of a box-prompted SAM: one mask per detector box, scored by pycocotools'
``COCOeval(iouType='segm')``."""
from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data.coco import BoxPrompts, CocoImage, SamTransform, load_image
from ..errors import ConfigError

#: the metrics, in the order of COCOeval's first six statistics
SEGM_METRICS = ("segm_mAP", "segm_mAP_50", "segm_mAP_75", "segm_mAP_s", "segm_mAP_m", "segm_mAP_l")
STANDARD_MAX_DETS = (1, 10, 100)


@dataclass(frozen=True)
class EvalImage:
    """One evaluated image: its annotation entry and its box prompts after the protocol's filter."""

    image: CocoImage
    prompts: BoxPrompts


def _pycocotools():
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:  # pragma: no cover - the CPU setup installs it
        raise ConfigError("coco_instance needs pycocotools (pip install pycocotools)") from exc
    return mask_utils, COCO, COCOeval


def encode_masks(masks: torch.Tensor) -> list[dict]:
    """Return the COCO RLEs (``counts`` as str, JSON-ready) of binary masks (P, H, W)."""
    mask_utils, _, _ = _pycocotools()
    if masks.shape[0] == 0:
        return []
    # pycocotools wants (H, W, P) uint8 in Fortran order
    array = np.asfortranarray(masks.to(device="cpu", dtype=torch.uint8).permute(1, 2, 0).numpy())
    rles = mask_utils.encode(array)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def decode_prompts(model: nn.Module, image: torch.Tensor, boxes: torch.Tensor,
                   chunk: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return [(mask logits (p, 1, h, w), predicted IoU (p, 1)), ...] for ``boxes`` (P, 4) on one image, in
    chunks of at most ``chunk`` boxes; the image is encoded once. A model without ``encode``/``decode`` is
    called once as ``model(image, boxes)`` with all boxes."""
    if hasattr(model, "encode") and hasattr(model, "decode"):
        embedding = model.encode(image)
        return [tuple(model.decode(embedding, part)) for part in boxes.split(chunk)]
    return [tuple(model(image, boxes))]


class CocoInstanceEvaluator:
    """Mask mAP (percent) of a box-prompted SAM on COCO images with a detector's boxes.

    For each image: the model's mask of each box (``multimask_output=False``), upsampled to the original size
    and thresholded, RLE-encoded; score = detector score × SAM's predicted IoU; category = the box's. An image
    without boxes gets no prediction. ``COCOeval(iouType='segm')`` over exactly the evaluated images with
    ``params.maxDets = max_dets``: the reported mAP (and AP50/AP75/S/M/L) are at ``max_dets[-1]``.
    """

    def __init__(self, images: Sequence[EvalImage], ground_truth: dict, root: str, ann_path: str,
                 transform: SamTransform, device: str | torch.device = "cpu", progress: bool = True,
                 prompt_chunk: int = 64, max_dets: Sequence[int] = STANDARD_MAX_DETS, desc: str = "eval") -> None:
        self.images = list(images)
        self.ground_truth = ground_truth
        self.root = root
        self.ann_path = ann_path
        self.transform = transform
        self.device = torch.device(device)
        self.progress = progress
        self.prompt_chunk = int(prompt_chunk)
        self.max_dets = [int(m) for m in max_dets]
        self.desc = desc
        if len(self.max_dets) != 3 or not all(a < b for a, b in zip([0] + self.max_dets, self.max_dets)):
            raise ConfigError(f"max_dets must be 3 increasing positive integers (COCOeval's summary), "
                              f"got {list(max_dets)}")
        if self.prompt_chunk < 1:
            raise ConfigError(f"prompt_chunk must be a positive integer, got {prompt_chunk!r}")

    def predictions(self, model: nn.Module) -> list[dict]:
        """Return the model's COCO segm results ``[{image_id, category_id, segmentation (RLE), score}, ...]``,
        image by image in evaluation order and box by box in prompt order."""
        model.eval()
        out: list[dict] = []
        bar = tqdm(self.images, desc=self.desc, disable=not self.progress, leave=False, dynamic_ncols=True,
                   unit="img")
        with torch.no_grad():
            for item in bar:
                if len(item.prompts) == 0:
                    continue
                out.extend(self._predict_image(model, item))
                bar.set_postfix(masks=len(out), refresh=False)
        bar.close()
        return out

    def _predict_image(self, model: nn.Module, item: EvalImage) -> list[dict]:
        im = item.image
        tensor, input_size = self.transform.image(load_image(self.root, im, self.ann_path))
        original = (im.height, im.width)
        boxes = torch.from_numpy(self.transform.boxes(item.prompts.boxes, original)).float()
        parts = decode_prompts(model, tensor.to(self.device), boxes.to(self.device), self.prompt_chunk)
        results: list[dict] = []
        start = 0
        for logits, iou in parts:
            # upsample and encode one chunk at a time: P full-size float masks at once can exceed memory
            for low, pred in zip(logits.split(self.prompt_chunk), iou.split(self.prompt_chunk)):
                rles = encode_masks(self.transform.masks(low, input_size, original))
                ious = pred.reshape(-1).float().cpu().tolist()
                for k, (rle, value) in enumerate(zip(rles, ious)):
                    j = start + k
                    results.append({"image_id": im.id, "category_id": int(item.prompts.category_ids[j]),
                                     "segmentation": rle, "score": float(item.prompts.scores[j]) * value})
                start += len(rles)
        if start != len(item.prompts):
            raise RuntimeError(f"the model returned {start} masks for {len(item.prompts)} boxes of image {im.id}")
        return results

    def score(self, predictions: list[dict]) -> dict:
        """Return the segm metrics (percent) of COCO results ``predictions`` over the evaluated images; all
        zeros when there is no prediction. A size range without ground truth keeps COCOeval's -1.0."""
        _, COCO, COCOeval = _pycocotools()
        if not predictions:
            return {**{k: 0.0 for k in SEGM_METRICS}, "num_images": len(self.images), "num_predictions": 0}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            gt = COCO()
            # copies: COCOeval turns the ground truth's polygons into RLEs in place, loadRes writes into results
            gt.dataset = copy.deepcopy(self.ground_truth)
            gt.createIndex()
            dt = gt.loadRes(copy.deepcopy(predictions))
            evaluator = COCOeval(gt, dt, iouType="segm")
            evaluator.params.imgIds = sorted(item.image.id for item in self.images)
            evaluator.params.maxDets = list(self.max_dets)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = evaluator.stats[: len(SEGM_METRICS)]
        metrics = {k: (float(v) * 100.0 if v >= 0 else -1.0) for k, v in zip(SEGM_METRICS, stats)}
        return {**metrics, "num_images": len(self.images), "num_predictions": len(predictions)}

    def evaluate(self, model: nn.Module) -> dict:
        """Return ``{segm_mAP, segm_mAP_50, segm_mAP_75, segm_mAP_s, segm_mAP_m, segm_mAP_l}`` in percent with
        ``num_images`` and ``num_predictions``; the model must already be on ``self.device``."""
        return self.score(self.predictions(model))
