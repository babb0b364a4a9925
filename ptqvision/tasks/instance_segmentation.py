"""COCO instance segmentation with detector box prompts (``task.type='coco_instance'``): SAM gives one mask
per box of a detector's COCO results JSON, scored with pycocotools' segm mAP.

Config (``task.*``, beside ``type``):

- ``score_thr`` (0.0): keep the detector boxes with score ≥ this (0.0 takes a file of probabilities as
  given). The detector's NMS is already in its file.
- ``max_per_image`` (None): at most this many boxes per image, highest score first (None: no cap).
- ``max_dets`` ([1, 10, 100]): COCOeval's ``params.maxDets``; mAP, AP50, AP75 and S/M/L are at the last
  (PTQ4SAM's mmdet evaluation uses [100, 300, 1000]: its mAP is at 100 and the others at 1000).
- ``prompt_chunk`` (64): the image is encoded once and its boxes decoded in chunks of at most this many.
- ``val_max_images`` (None): evaluate the first N images of ``data.val.ann_file`` only (None: all).
- ``calib_boxes`` ('detector'): calibration prompts from ``data.calib.det_file`` (with the same score_thr and
  max_per_image) or 'gt': the ground-truth boxes of ``data.calib.ann_file`` (no det_file then).
- ``calib_order`` ('first'): the first ``calib.num_samples`` images of the calibration annotation file that
  have a box, in file order (PTQ4SAM's choice), or 'random': a sample seeded by ``calib.seed``.
- ``calib_max_boxes`` (None): at most this many boxes per calibration image (bounds reconstruction memory).

``data.calib`` / ``data.val``: ``type`` ('coco'), ``root`` (the image folder), ``ann_file`` (``instances_*.json``),
``det_file`` (the detector's results on those images). One image per calibration batch (``calib.batch_size``,
``data.batch_size`` and ``data.num_workers`` are not used by this task).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from ..data.coco import (
    CocoAnnotations,
    Detections,
    SamTransform,
    calibration_hash,
    check_images,
    filter_boxes,
    gt_prompts,
    load_coco_annotations,
    load_detections,
    load_image,
    select_calibration,
)
from ..errors import ConfigError, DataError
from ..eval.coco import SEGM_METRICS, STANDARD_MAX_DETS, CocoInstanceEvaluator, EvalImage
from ..registry import TASKS
from .base import Task

LOG = logging.getLogger("ptqvision")


def _positive_int_or_none(value: object, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer or None, got {value!r}")
    return value


@dataclass(frozen=True)
class CocoTaskSettings:
    """The checked ``task.*`` settings of coco_instance."""

    score_thr: float = 0.0
    max_per_image: int | None = None
    max_dets: tuple[int, ...] = STANDARD_MAX_DETS
    prompt_chunk: int = 64
    val_max_images: int | None = None
    calib_boxes: str = "detector"
    calib_order: str = "first"
    calib_max_boxes: int | None = None

    @classmethod
    def from_cfg(cls, task: dict) -> CocoTaskSettings:
        """Return the settings of a resolved ``task`` section; ConfigError on a bad value."""
        thr = task["score_thr"]
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not math.isfinite(thr):
            raise ConfigError(f"task.score_thr must be a finite number, got {thr!r}")
        dets = task["max_dets"]
        if not (isinstance(dets, (list, tuple)) and len(dets) == 3
                and all(isinstance(d, int) and not isinstance(d, bool) for d in dets)
                and 0 < dets[0] < dets[1] < dets[2]):
            raise ConfigError(f"task.max_dets must be 3 increasing positive integers (COCOeval's summary reads "
                              f"maxDets[0..2]), got {dets!r}")
        chunk = _positive_int_or_none(task["prompt_chunk"], "task.prompt_chunk")
        if chunk is None:
            raise ConfigError("task.prompt_chunk must be a positive integer, got None")
        if task["calib_boxes"] not in ("detector", "gt"):
            raise ConfigError(f"task.calib_boxes must be 'detector' or 'gt', got {task['calib_boxes']!r}")
        if task["calib_order"] not in ("first", "random"):
            raise ConfigError(f"task.calib_order must be 'first' or 'random', got {task['calib_order']!r}")
        return cls(float(thr), _positive_int_or_none(task["max_per_image"], "task.max_per_image"), tuple(dets),
                   chunk, _positive_int_or_none(task["val_max_images"], "task.val_max_images"), task["calib_boxes"],
                   task["calib_order"], _positive_int_or_none(task["calib_max_boxes"], "task.calib_max_boxes"))


def _section(cfg: dict, split: str, need_det: bool) -> dict:
    """Return ``data.<split>`` checked for the keys this task needs; ConfigError naming the missing one."""
    section = cfg["data"][split]
    if (section.get("type") or "coco") != "coco":
        raise ConfigError(f"data.{split}.type must be 'coco' for task coco_instance, got {section['type']!r}")
    for key in ("root", "ann_file") + (("det_file",) if need_det else ()):
        if not section.get(key):
            raise ConfigError(f"data.{split}.{key} is required for task coco_instance")
    return section


@TASKS.register_module(name="coco_instance")
class CocoInstanceTask(Task):
    """COCO mask mAP of box-prompted SAM on ``data.val``; calibration images and their boxes from ``data.calib``.

    Every file is read and checked here, so that bad input fails in one line before any quantization work.
    """

    name = "coco_instance"
    metric_keys = SEGM_METRICS
    defaults = {"score_thr": 0.0, "max_per_image": None, "max_dets": list(STANDARD_MAX_DETS), "prompt_chunk": 64,
                "val_max_images": None, "calib_boxes": "detector", "calib_order": "first", "calib_max_boxes": None}
    data_defaults = {"type": "coco", "root": None, "ann_file": None, "det_file": None}

    def __init__(self, cfg: dict, preprocess: dict) -> None:
        super().__init__(cfg, preprocess)
        self.settings = s = CocoTaskSettings.from_cfg(cfg["task"])
        self.transform = SamTransform.from_preprocess(preprocess)
        val = _section(cfg, "val", need_det=True)
        calib = _section(cfg, "calib", need_det=s.calib_boxes == "detector")
        if s.calib_boxes == "gt" and calib.get("det_file"):
            raise ConfigError("data.calib.det_file is set but task.calib_boxes is 'gt' (ground-truth boxes): "
                              "remove one of them")

        self.val_ann = load_coco_annotations(val["ann_file"], "data.val.ann_file", annotations="segm")
        if not self.val_ann.dataset["annotations"]:
            raise DataError(f"data.val.ann_file {self.val_ann.path} has no annotations to evaluate against")
        images = self.val_ann.images[: s.val_max_images]
        check_images(val["root"], images, self.val_ann.path, "data.val")
        self.val_dets = load_detections(val["det_file"], self.val_ann, "data.val.det_file")
        self.val_images = [EvalImage(im, filter_boxes(self.val_dets.prompts(im.id), s.score_thr, s.max_per_image))
                           for im in images]
        if not any(len(item.prompts) for item in self.val_images):
            LOG.warning("no box of %s has score >= %g on the evaluated images: every metric will be 0",
                        self.val_dets.path, s.score_thr)

        self.calib_ann, self.calib_dets, self.calib_chosen, self.calib_skipped = self._choose_calibration(calib)
        check_images(calib["root"], [im for im, _ in self.calib_chosen], self.calib_ann.path, "data.calib")

    def _choose_calibration(self, calib: dict) -> tuple[CocoAnnotations, Detections, list, int]:
        """Return (annotation file, box source, [(image, boxes)] chosen, images without a box passed over)."""
        s = self.settings
        if s.calib_boxes == "gt":
            ann = load_coco_annotations(calib["ann_file"], "data.calib.ann_file", annotations="boxes")
            source = gt_prompts(ann)
            prompts = {i: filter_boxes(p, float("-inf"), s.calib_max_boxes) for i, p in source.per_image.items()}
        else:
            ann = load_coco_annotations(calib["ann_file"], "data.calib.ann_file", annotations="none")
            source = load_detections(calib["det_file"], ann, "data.calib.det_file")
            prompts = {}
            for i, p in source.per_image.items():
                kept = filter_boxes(p, s.score_thr, s.max_per_image)
                prompts[i] = kept.take(slice(0, s.calib_max_boxes))
        num = self.cfg["calib"]["num_samples"]
        try:
            chosen, skipped = select_calibration(ann.images, prompts, num, s.calib_order, self.cfg["calib"]["seed"])
        except ValueError as exc:
            raise DataError(f"calibration on {ann.path} ({s.calib_boxes} boxes, score >= {s.score_thr:g}): {exc}; "
                            f"lower calib.num_samples") from None
        return ann, source, chosen, skipped

    def calibration(self) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict]:
        """Return ([(image (1, 3, S, S), boxes (P, 4) x0 y0 x1 y1 in the model's frame)], record): one image per
        batch, images without a box skipped (``skipped_without_boxes``)."""
        root = self.cfg["data"]["calib"]["root"]
        batches = []
        for im, prompts in self.calib_chosen:
            image, _ = self.transform.image(load_image(root, im, self.calib_ann.path))
            boxes = torch.from_numpy(self.transform.boxes(prompts.boxes, (im.height, im.width))).float()
            batches.append((image, boxes))
        return batches, self._calib_record()

    def _calib_record(self) -> dict:
        s = self.settings
        return {"num_samples": len(self.calib_chosen), "seed": int(self.cfg["calib"]["seed"]),
                "sha256": calibration_hash(self.calib_chosen), "order": s.calib_order, "boxes": s.calib_boxes,
                "num_boxes": sum(len(p) for _, p in self.calib_chosen),
                "skipped_without_boxes": self.calib_skipped,
                "files_head": [im.file_name for im, _ in self.calib_chosen[:5]]}

    def evaluator(self, device: torch.device, progress: bool) -> CocoInstanceEvaluator:
        s = self.settings
        return CocoInstanceEvaluator(self.val_images, self.val_ann.dataset, self.cfg["data"]["val"]["root"],
                                     self.val_ann.path, self.transform, device=device, progress=progress,
                                     prompt_chunk=s.prompt_chunk, max_dets=s.max_dets)

    def distance(self, reference: torch.Tensor, output: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        raise ConfigError("the prediction difference is not defined for coco_instance")

    def describe_data(self) -> dict:
        """Return the evaluation protocol and both splits as results.json records them."""
        s = self.settings
        val, calib = self.cfg["data"]["val"], self.cfg["data"]["calib"]
        num_boxes = sum(len(item.prompts) for item in self.val_images)
        return {
            "protocol": {
                "iou_type": "segm", "score_thr": s.score_thr, "max_per_image": s.max_per_image,
                "max_dets": list(s.max_dets), "metrics_at_max_dets": s.max_dets[-1],
                "score": "detector score x SAM predicted IoU",
                "masks": "multimask_output=False (slot 0); logits upsampled to the original size, > mask_threshold",
                "images_without_boxes": "no prompt, no prediction (no dummy box)",
                "detection_area": "mask area (results without bbox)",
                "transform": self.transform.describe(),
            },
            "val": {
                "root": val["root"], "ann_file": self.val_ann.path, "ann_sha256": self.val_ann.sha256,
                "det_file": self.val_dets.path, "det_sha256": self.val_dets.sha256,
                "num_images": len(self.val_images), "num_images_in_ann_file": len(self.val_ann.images),
                "num_images_without_boxes": sum(len(item.prompts) == 0 for item in self.val_images),
                "num_boxes": num_boxes, "num_boxes_in_det_file": self.val_dets.num_boxes,
            },
            "calib": {
                "root": calib["root"], "ann_file": self.calib_ann.path, "ann_sha256": self.calib_ann.sha256,
                "det_file": self.calib_dets.path if s.calib_boxes == "detector" else None,
                "det_sha256": self.calib_dets.sha256 if s.calib_boxes == "detector" else None,
                "max_boxes": s.calib_max_boxes, **self._calib_record(),
            },
        }

    def format_metrics(self, metrics: dict) -> str:
        m = metrics
        return (f"segm mAP {m['segm_mAP']:.2f} AP50 {m['segm_mAP_50']:.2f} AP75 {m['segm_mAP_75']:.2f} "
                f"S/M/L {m['segm_mAP_s']:.2f}/{m['segm_mAP_m']:.2f}/{m['segm_mAP_l']:.2f} "
                f"(maxDets {self.settings.max_dets[-1]})")


__all__ = ["CocoInstanceTask", "CocoTaskSettings"]
