"""Semantic segmentation (``task.type='semantic_segmentation'``): label maps, mIoU from a confusion matrix over the
whole set, and a per-pixel KL as the prediction difference's distance.

Config (``task.*``, beside ``type``):

- ``num_classes`` (None: ``model.num_classes``): the classes of the labels; the model must give as many logits.
- ``ignore_index`` (255): the label of pixels that count nowhere.
- ``reduce_zero_label`` (False): ADE20K's convention: label 0 ("other") becomes the ignore index and every other
  label c becomes c - 1.
- ``class_names`` (None: ``class_0``...): a list of names, or a text file with one name per line.
- ``inference`` ('whole'): 'whole' (the whole preprocessed image at once) or 'slide' (mmseg's sliding window:
  ``crop_size`` [h, w] windows every ``stride`` [h, w] pixels, overlapping logits averaged; ``data.batch_size``
  windows per forward).
- ``resize`` (None) and ``keep_ratio`` (True): the image resize of the protocol (None: none; an int: short side;
  [a, b]: mmseg's ``Resize(scale=(a, b), keep_ratio)``; see :class:`~ptqvision.data.segmentation.SegPreprocess`).
  Mean, std and interpolation come from the model's preprocessing (``data.preprocess``); labels are never resized:
  the logits are resized to the label's size (``align_corners``, default False) before the argmax.
- ``calib_crop`` ([512, 512]): calibration images are preprocessed as for evaluation, then cropped to this
  [h, w] at a seeded position (zero-padded where smaller), so that the batches stack.
- ``val_max_images`` (None): evaluate the first N images of ``data.val`` (sorted by path) only.
- ``scan_labels`` (True): decode every evaluation label map up front to check its class indices, so that bad data
  fails before any quantization work (ADE20K's 2000 validation maps take seconds); off: checked as each map is
  evaluated. File existence and image / label sizes (from the headers) are always checked up front.

``data.calib`` / ``data.val``: ``type`` ('ade20k', 'cityscapes', 'voc' or 'list'), ``root``, ``split``,
``list_file`` (see :mod:`ptqvision.data.segmentation`). Calibration reads images only. ``data.num_workers``
loads evaluation images in background processes.

The prediction difference (PD-Quant) compares the full-precision and quantized logits (B, C, H, W) pixel by pixel:
KL(softmax(z_fp / T) ‖ softmax(z_q / T)) over the class dim at each pixel, averaged over pixels and images (for
(B, C) logits it is the classification task's batch-mean KL).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.segmentation import (LabelRules, SegEvalSet, SegPreprocess, calibration_crops, check_sizes, scan_labels,
                                 scan_split)
from ..errors import ConfigError, DataError
from ..models import segmentation as _builders  # noqa: F401  (registers torchvision_seg, timm_seg, seg_shapes_net)
from ..eval.segmentation import INFERENCE_MODES, InferenceSettings, SegmentationEvaluator
from ..registry import TASKS
from .base import Task

LOG = logging.getLogger("ptqvision")


def pixel_kl(reference: torch.Tensor, output: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Return KL(softmax(reference / T) ‖ softmax(output / T)) over dim 1 (the classes), summed over the classes at
    each position and averaged over positions and batch: logits (B, C, ...) of any number of spatial dims."""
    log_q = F.log_softmax(output / temperature, dim=1)
    log_p = F.log_softmax(reference / temperature, dim=1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(1)
    return per_position.mean()


def _positive_pair_or_none(value: object, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"{key} must be a positive integer or [height, width], got {value!r}")
    return int(value[0]), int(value[1])


def read_class_names(value: object, num_classes: int) -> list[str]:
    """Return the class names of ``task.class_names`` (a list, a file with one name per line, or None for
    ``class_0``...); ConfigError / DataError when they are not ``num_classes`` names."""
    if value is None:
        return [f"class_{i}" for i in range(num_classes)]
    if isinstance(value, str):
        if not os.path.isfile(value):
            raise DataError(f"task.class_names: file not found: {value}")
        with open(value, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        where = value
    elif isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value):
        names, where = list(value), "the list"
    else:
        raise ConfigError(f"task.class_names must be a list of names, a file or None, got {type(value).__name__}")
    if len(names) != num_classes:
        raise ConfigError(f"task.class_names: {where} has {len(names)} names for {num_classes} classes")
    if len(set(names)) != len(names):
        raise ConfigError(f"task.class_names: {where} repeats a name")
    return names


@dataclass(frozen=True)
class SegTaskSettings:
    """The checked ``task.*`` settings of semantic_segmentation."""

    rules: LabelRules
    class_names: tuple[str, ...]
    inference: InferenceSettings
    preprocess: SegPreprocess
    calib_crop: tuple[int, int]
    val_max_images: int | None
    scan_labels: bool

    @classmethod
    def from_cfg(cls, cfg: dict, preprocess: dict) -> SegTaskSettings:
        """Return the settings of a resolved config; ConfigError naming the first bad key."""
        t = cfg["task"]
        n = t["num_classes"] if t["num_classes"] is not None else cfg["model"]["num_classes"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"task.num_classes must be a positive integer, got {n!r}")
        ignore = t["ignore_index"]
        if isinstance(ignore, bool) or not isinstance(ignore, int) or ignore < 0:
            raise ConfigError(f"task.ignore_index must be a non-negative integer, got {ignore!r}")
        if ignore < n:
            raise ConfigError(f"task.ignore_index {ignore} is a class index (num_classes {n})")
        for key in ("reduce_zero_label", "scan_labels", "align_corners"):
            if not isinstance(t[key], bool):
                raise ConfigError(f"task.{key} must be true or false, got {t[key]!r}")
        mode = t["inference"]
        if mode not in INFERENCE_MODES:
            raise ConfigError(f"task.inference must be one of {INFERENCE_MODES}, got {mode!r}")
        crop = _positive_pair_or_none(t["crop_size"], "task.crop_size")
        stride = _positive_pair_or_none(t["stride"], "task.stride")
        if mode == "slide":
            if crop is None or stride is None:
                raise ConfigError("task.inference='slide' needs task.crop_size and task.stride ([height, width])")
            if stride[0] > crop[0] or stride[1] > crop[1]:
                raise ConfigError(f"task.stride {list(stride)} must not exceed task.crop_size {list(crop)} (pixels "
                                  "between windows would never be predicted)")
        elif crop is not None or stride is not None:
            raise ConfigError("task.crop_size and task.stride are for task.inference='slide' (it is 'whole')")
        calib_crop = _positive_pair_or_none(t["calib_crop"], "task.calib_crop")
        if calib_crop is None:
            raise ConfigError("task.calib_crop must be [height, width]: calibration batches need one size")
        val_max = t["val_max_images"]
        if val_max is not None and (isinstance(val_max, bool) or not isinstance(val_max, int) or val_max < 1):
            raise ConfigError(f"task.val_max_images must be a positive integer or None, got {val_max!r}")
        for key in ("resize", "crop"):
            if cfg["data"]["preprocess"].get(key) is not None:
                raise ConfigError(f"data.preprocess.{key} is not used by semantic_segmentation: set task.resize "
                                  "(and task.keep_ratio); labels are compared at their own size")
        pre = SegPreprocess.from_settings(t["resize"], t["keep_ratio"], preprocess)
        inference = InferenceSettings(mode, crop, stride, t["align_corners"], cfg["data"]["batch_size"])
        return cls(LabelRules(n, ignore, t["reduce_zero_label"]), tuple(read_class_names(t["class_names"], n)),
                   inference, pre, calib_crop, val_max, t["scan_labels"])


@TASKS.register_module(name="semantic_segmentation")
class SemanticSegmentationTask(Task):
    """mIoU / mAcc / aAcc and per-class IoU on ``data.val``; calibration crops of ``data.calib`` images.

    Files, sizes and (with ``scan_labels``) class indices are checked here, before any quantization work.
    """

    name = "semantic_segmentation"
    metric_keys = ("mIoU", "aAcc")
    defaults = {"num_classes": None, "ignore_index": 255, "reduce_zero_label": False, "class_names": None,
                "inference": "whole", "crop_size": None, "stride": None, "resize": None, "keep_ratio": True,
                "align_corners": False, "calib_crop": [512, 512], "val_max_images": None, "scan_labels": True}
    data_defaults = {"type": "list", "root": None, "split": None, "list_file": None}

    def __init__(self, cfg: dict, preprocess: dict) -> None:
        super().__init__(cfg, preprocess)
        self.settings = s = SegTaskSettings.from_cfg(cfg, preprocess)
        self.val = scan_split(cfg["data"]["val"], "data.val", need_labels=True)
        self.val_samples = list(self.val.samples[: s.val_max_images])
        check_sizes(self.val_samples)
        if s.scan_labels:
            scan_labels(self.val_samples, s.rules)
        self.calib = scan_split(cfg["data"]["calib"], "data.calib", need_labels=False)

    def calibration(self) -> tuple[list[torch.Tensor], dict]:
        """Return (batches (B, 3, h, w) of ``calib_crop`` crops, record with num_samples, seed, sha256, crop)."""
        c = self.cfg["calib"]
        return calibration_crops(self.calib, c["num_samples"], c["seed"], self.settings.calib_crop,
                                 self.settings.preprocess, c["batch_size"])

    def evaluator(self, device: torch.device, progress: bool) -> SegmentationEvaluator:
        s = self.settings
        dataset = SegEvalSet(self.val, self.val_samples, s.preprocess, s.rules)
        workers = self.cfg["data"]["num_workers"]
        # batch_size=None: one image per item (sizes differ); workers only decode and resize
        loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers)
        return SegmentationEvaluator(loader, s.rules.num_classes, s.class_names, s.inference, s.rules.ignore_index,
                                     device=device, progress=progress, names=[x.label for x in self.val_samples])

    def distance(self, reference: torch.Tensor, output: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Return the per-pixel KL of :func:`pixel_kl` (averaged over pixels and images)."""
        return pixel_kl(reference, output, temperature)

    def describe_data(self) -> dict:
        """Return the evaluation protocol and both splits as results.json records them."""
        s = self.settings
        val = self.val.describe()
        val.update(num_images=len(self.val_samples), num_images_in_split=len(self.val.samples),
                   files_sha256=self.val.files_sha256(self.val_samples))
        return {
            "protocol": {**s.rules.describe(), "class_names": list(s.class_names), "inference": s.inference.describe(),
                         "preprocess": s.preprocess.describe(), "calib_crop": list(s.calib_crop),
                         "metrics": "confusion matrix over the whole set; mIoU over classes with union > 0",
                         "label_checks": "files and sizes up front; class indices "
                                         + ("up front and per image" if s.scan_labels else "per image")},
            "val": val,
            "calib": self.calib.describe(),
        }

    def format_metrics(self, metrics: dict) -> str:
        return (f"mIoU {metrics['mIoU']:.2f} mAcc {metrics['mAcc']:.2f} aAcc {metrics['aAcc']:.2f} "
                f"({metrics['num_classes_present']} classes present, {metrics['num_images']} images)")


__all__ = ["SemanticSegmentationTask", "SegTaskSettings", "pixel_kl", "read_class_names"]
