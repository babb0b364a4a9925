"""Semantic segmentation with SAM (``task.type='sam_semantic'``), as Semantic Segment Anything does it: SAM's
automatic mask generator proposes masks on every image and each mask takes the majority class of a semantic
branch inside it (:mod:`ptqvision.eval.sam_semantic`); mIoU over the set from one confusion matrix, with the label
protocol of ``semantic_segmentation``.

The run's model is the SAM (full precision for ``metrics.fp``, quantized for ``metrics.quant``); the semantic branch
is the same for both, one of (``task.semantic_branch``):

- ``dict(config='configs/....py')``: the full-precision segmentation model of a ``semantic_segmentation`` config
  (its ``model.weights``), run with that config's preprocessing and inference (``task.resize``, whole / slide);
- ``dict(config='configs/....py', checkpoint='work_dirs/.../quantized.pth')``: that model quantized, rebuilt from the
  ptqvision checkpoint that ``tools/quant.py`` wrote for that config (as ``tools/test.py`` does);
- ``dict(folder='path')``: a folder of its predicted label maps, ``<image stem>.png``, one class index per pixel
  (in the reduced index space when ``reduce_zero_label``: 0..num_classes-1), each the size of its image.

Config (``task.*``, beside ``type``): the label keys of semantic_segmentation (``num_classes``, ``ignore_index``,
``reduce_zero_label``, ``class_names``, ``val_max_images``, ``scan_labels``), ``semantic_branch``,
``mask_generator`` (segment-anything's SamAutomaticMaskGenerator arguments, its defaults: ``points_per_side`` 32,
``points_per_batch`` 64 (the decoder's batch of point prompts), ``pred_iou_thresh`` 0.88, ``stability_score_thresh``
0.95, ``box_nms_thresh`` 0.7, ...) and ``calib_points_per_side`` (8): SAM is calibrated and reconstructed on
``data.calib`` images (``calib.num_samples`` drawn with ``calib.seed``) with a grid of that many points per side as
its prompts (one foreground point each; one image per batch).

``data.calib`` / ``data.val``: the layouts of semantic_segmentation (``ade20k``, ``cityscapes``, ``voc``, ``list``);
calibration reads images only. Files, sizes and class indices (labels and a folder branch's predictions) are checked
up front: bad input is a one-line error naming the file before any quantization work.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..data.coco import SamTransform
from ..data.segmentation import (LabelRules, SegSample, check_sizes, image_size, load_label, sample_indices,
                                 scan_labels, scan_split)
from ..errors import ConfigError, DataError
from ..eval.sam_semantic import MaskGeneratorSettings, mask_generator, vote
from ..eval.segmentation import confusion_matrix, segmentation_metrics
from ..registry import TASKS
from .base import Task
from .semantic_segmentation import SegTaskSettings, read_class_names

LOG = logging.getLogger("ptqvision")
BRANCH_KINDS = ("dict(config=...)", "dict(config=..., checkpoint=...)", "dict(folder=...)")


def file_sha256(path: str) -> str:
    """Return the SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SemanticBranch:
    """The per-pixel classes the masks vote on: a segmentation model (full precision or quantized) of a
    semantic_segmentation config, or a folder of its predicted label maps. ``record`` says which, for results.json."""

    def __init__(self, spec: Any, num_classes: int) -> None:
        keys = set(spec) if isinstance(spec, dict) else set()
        if not (keys in ({"config"}, {"config", "checkpoint"}, {"folder"})
                and all(isinstance(v, str) and v for v in spec.values())):
            raise ConfigError(f"task.semantic_branch must be one of {', '.join(BRANCH_KINDS)} with path strings, got "
                              f"{spec!r}")
        self.spec = dict(spec)
        self.num_classes = num_classes
        self.model: torch.nn.Module | None = None
        if "folder" in spec:
            if not os.path.isdir(spec["folder"]):
                raise DataError(f"task.semantic_branch.folder not found: {spec['folder']}")
            self.folder = spec["folder"]
            self.record: dict = {"kind": "label-map folder", "quantized": None, "folder": self.folder}
            return
        self._build_model(spec["config"], spec.get("checkpoint"))

    def _build_model(self, config: str, ckpt: str | None) -> None:
        from ..checkpoint import load_into, load_quantized
        from ..config import load_config
        from ..models import build_model
        from ..nn import check_ready
        from ..runner import build_preprocess, quantize_model

        if ckpt is not None and not os.path.isfile(ckpt):
            raise DataError(f"task.semantic_branch.checkpoint not found: {ckpt}")
        cfg, _ = load_config(config, ["model.weights=random"] if ckpt else [])
        if cfg["task"]["type"] != "semantic_segmentation":
            raise ConfigError(f"task.semantic_branch.config {config} is a {cfg['task']['type']} config, not "
                              "semantic_segmentation")
        model, default_pre = build_model(cfg["model"])
        self.settings = SegTaskSettings.from_cfg(cfg, build_preprocess(cfg, default_pre))
        if self.settings.rules.num_classes != self.num_classes:
            raise ConfigError(f"task.semantic_branch.config {config} has {self.settings.rules.num_classes} classes, "
                              f"the task {self.num_classes}")
        common = {"config": config, "model": cfg["model"]["name"] or cfg["model"]["type"],
                  "preprocess": self.settings.preprocess.describe(), "inference": self.settings.inference.describe()}
        if ckpt:
            payload = load_quantized(ckpt)
            model, adapter = quantize_model(cfg, model)
            adapter.restore(model, payload["meta"].get("adapter_state", {}))
            load_into(model, payload, ckpt)
            check_ready(model)
            self.record = {"kind": "quantized model", "quantized": True, **common, "checkpoint": ckpt,
                           "checkpoint_sha256": file_sha256(ckpt), "method": cfg["method"]["type"],
                           "w_bits": cfg["quant"]["w_bits"], "a_bits": cfg["quant"]["a_bits"]}
        else:
            weights = cfg["model"]["weights"]
            self.record = {"kind": "full-precision model", "quantized": False, **common, "weights": weights,
                           "weights_sha256": file_sha256(weights) if isinstance(weights, str)
                           and os.path.isfile(weights) else None}
        self.model = model.eval()

    def prediction_path(self, image_path: str) -> str:
        """Return the folder branch's label map for an image: ``<folder>/<image stem>.png``."""
        return os.path.join(self.folder, os.path.splitext(os.path.basename(image_path))[0] + ".png")

    def check(self, samples: Sequence[SegSample], scan: bool) -> None:
        """A folder branch: raise DataError naming the first prediction that is missing or whose size differs from
        its label map's (file headers), and with ``scan`` the first with a class index out of range; record the
        SHA-256 of the predictions' bytes."""
        if self.model is not None:
            return
        digest = hashlib.sha256()
        for s in samples:
            path = self.prediction_path(s.image)
            if not os.path.isfile(path):
                raise DataError(f"task.semantic_branch.folder: no prediction {path} for image {s.image}")
            size, want = image_size(path), image_size(s.label)
            if size != want:
                raise DataError(f"prediction {path} is {size[0]}x{size[1]} (HxW) but its label map {s.label} is "
                                f"{want[0]}x{want[1]}")
            if scan:
                self._read(path)
            digest.update(os.path.basename(path).encode() + b"\n" + file_sha256(path).encode() + b"\n")
        self.record.update(num_predictions=len(samples), predictions_sha256=digest.hexdigest())

    def _read(self, path: str) -> np.ndarray:
        """Return a folder prediction (H, W) int64; DataError naming the file if it is not one class index per pixel
        in 0..num_classes-1."""
        try:
            with Image.open(path) as im:
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise DataError(f"prediction {path} has mode {im.mode}: expected one class index per pixel, not "
                                    "colours")
                pred = np.array(im).astype(np.int64)
        except OSError as exc:
            raise DataError(f"cannot read prediction {path}: {str(exc).splitlines()[0][:120]}") from None
        bad = (pred < 0) | (pred >= self.num_classes)
        if bad.any():
            raise DataError(f"prediction {path}: class index {int(pred[bad][0])} out of range for {self.num_classes} "
                            f"classes ({int(bad.sum())} pixels)")
        return pred

    @torch.no_grad()
    def classes(self, image_path: str, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """Return the branch's class map (H, W) int64 of an image at its label map's size (H, W)."""
        if self.model is None:
            path = self.prediction_path(image_path)
            pred = self._read(path)
            if pred.shape != tuple(size):
                raise DataError(f"prediction {path} is {pred.shape[0]}x{pred.shape[1]} (HxW), its label map "
                                f"{size[0]}x{size[1]}")
            return torch.from_numpy(pred).to(device)
        self.model.to(device)
        x = self.settings.preprocess.image(image_path)[None].to(device)
        return self.settings.inference.run(self.model, x, tuple(size)).argmax(1)[0]


class SamSemanticEvaluator:
    """mIoU, mAcc, aAcc and per-class IoU (percent) of SAM's automatic masks voted on the semantic branch over the
    evaluation images, and, for reference, of the branch alone (``branch_mIoU``, ``branch_aAcc``: the same for FP
    and quantized SAM)."""

    def __init__(self, samples: list, rules: LabelRules, class_names: list[str], branch: SemanticBranch,
                 generator: MaskGeneratorSettings, device: torch.device, progress: bool) -> None:
        self.samples, self.rules, self.class_names = samples, rules, class_names
        self.branch, self.generator, self.device, self.progress = branch, generator, device, progress

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict:
        """Return the metrics of :func:`~ptqvision.eval.segmentation.segmentation_metrics` for the voted maps, with
        ``branch_mIoU``, ``branch_aAcc``, ``num_images`` and ``masks_per_image``; ``model`` is the SAM, on
        ``self.device``."""
        model.eval()
        c = self.rules.num_classes
        voted = torch.zeros((c, c), dtype=torch.int64, device=self.device)
        alone = torch.zeros_like(voted)
        amg = mask_generator(model, self.generator)
        masks_total = 0
        bar = tqdm(self.samples, desc="eval", disable=not self.progress, leave=False, dynamic_ncols=True, unit="img")
        for s in bar:
            label = torch.from_numpy(load_label(s.label, self.rules)).to(self.device)
            with Image.open(s.image) as im:
                rgb = np.array(im.convert("RGB"))
            branch = self.branch.classes(s.image, tuple(label.shape), self.device)
            masks = [m["segmentation"] for m in amg.generate(rgb)]
            masks_total += len(masks)
            voted += confusion_matrix(vote(branch, masks, c), label, c, self.rules.ignore_index)
            alone += confusion_matrix(branch, label, c, self.rules.ignore_index)
        n = len(self.samples)
        out = segmentation_metrics(voted, self.class_names)
        ref = segmentation_metrics(alone, self.class_names)
        return {**out, "branch_mIoU": ref["mIoU"], "branch_aAcc": ref["aAcc"], "branch_per_class": ref["per_class"],
                "num_images": n, "masks_per_image": round(masks_total / max(n, 1), 2)}


@TASKS.register_module(name="sam_semantic")
class SamSemanticTask(Task):
    """Semantic Segment Anything: SAM's automatic masks voted on a semantic branch (see the module docstring)."""

    name = "sam_semantic"
    metric_keys = ("mIoU", "aAcc")
    defaults = {"num_classes": None, "ignore_index": 255, "reduce_zero_label": False, "class_names": None,
                "val_max_images": None, "scan_labels": True, "semantic_branch": None,
                "mask_generator": MaskGeneratorSettings().as_dict(), "calib_points_per_side": 8}
    data_defaults = {"type": "list", "root": None, "split": None, "list_file": None}

    def __init__(self, cfg: dict, preprocess: dict) -> None:
        super().__init__(cfg, preprocess)
        t = cfg["task"]
        n = t["num_classes"] if t["num_classes"] is not None else cfg["model"]["num_classes"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"task.num_classes must be a positive integer, got {n!r}")
        ignore = t["ignore_index"]
        if isinstance(ignore, bool) or not isinstance(ignore, int) or not ignore >= n:
            raise ConfigError(f"task.ignore_index must be an integer >= num_classes ({n}), got {ignore!r}")
        for key in ("reduce_zero_label", "scan_labels"):
            if not isinstance(t[key], bool):
                raise ConfigError(f"task.{key} must be true or false, got {t[key]!r}")
        for key in ("calib_points_per_side", "val_max_images"):
            v = t[key]
            if not (v is None and key == "val_max_images") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"task.{key} must be a positive integer, got {v!r}")
        if t["semantic_branch"] is None:
            raise ConfigError(f"task.semantic_branch is required: {', '.join(BRANCH_KINDS)}")
        self.rules = LabelRules(n, ignore, t["reduce_zero_label"])
        self.class_names = read_class_names(t["class_names"], n)
        self.generator = MaskGeneratorSettings.from_cfg(t["mask_generator"])
        self.transform = SamTransform.from_preprocess(preprocess)
        self.val = scan_split(cfg["data"]["val"], "data.val", need_labels=True)
        self.val_samples = list(self.val.samples[: t["val_max_images"]])
        check_sizes(self.val_samples)
        if t["scan_labels"]:
            scan_labels(self.val_samples, self.rules)
        self.calib = scan_split(cfg["data"]["calib"], "data.calib", need_labels=False)
        self.calib_chosen = [self.calib.samples[i] for i in sample_indices(
            len(self.calib.samples), cfg["calib"]["num_samples"], cfg["calib"]["seed"], "data.calib")]
        self.branch = SemanticBranch(t["semantic_branch"], n)
        self.branch.check(self.val_samples, t["scan_labels"])

    def calibration(self) -> tuple[list, dict]:
        """Return one batch per image: (image (1, 3, S, S), points (P, 2) of a ``calib_points_per_side`` grid in the
        model's frame, x then y), and the record (num_samples, seed, sha256 of the files and the grid, prompts)."""
        from segment_anything.utils.amg import build_point_grid

        side = self.cfg["task"]["calib_points_per_side"]
        grid = torch.from_numpy(build_point_grid(side)).float()  # (side², 2) in [0, 1], x then y: the AMG's grid
        batches = []
        digest = hashlib.sha256(f"points_per_side={side}\n".encode())
        for s in self.calib_chosen:
            try:
                with Image.open(s.image) as im:
                    x, (h, w) = self.transform.image(im)
            except OSError as exc:
                raise DataError(f"cannot decode image {s.image}: {str(exc).splitlines()[0][:120]}") from None
            batches.append((x, grid * torch.tensor([w, h], dtype=torch.float32)))  # in the resized, unpadded frame
            digest.update(self.calib.relative(s.image).encode() + b"\n")
        return batches, {"num_samples": len(batches), "seed": int(self.cfg["calib"]["seed"]),
                         "sha256": digest.hexdigest(), "points_per_side": side,
                         "prompts": f"a {side}x{side} grid of single foreground points per image (segment-anything's "
                                    "build_point_grid), one image per batch",
                         "files_head": [self.calib.relative(s.image) for s in self.calib_chosen[:5]]}

    def evaluator(self, device: torch.device, progress: bool) -> SamSemanticEvaluator:
        return SamSemanticEvaluator(self.val_samples, self.rules, self.class_names, self.branch, self.generator,
                                    device, progress)

    def distance(self, reference: torch.Tensor, output: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        raise ConfigError("the prediction difference is not defined for sam_semantic (recon.pd_loss=False)")

    def describe_data(self) -> dict:
        """Return the protocol (labels, pipeline, which parts are quantized, mask generator) and both splits."""
        val = self.val.describe()
        val.update(num_images=len(self.val_samples), num_images_in_split=len(self.val.samples),
                   files_sha256=self.val.files_sha256(self.val_samples))
        return {"protocol": {**self.rules.describe(), "class_names": self.class_names,
                             "pipeline": "Semantic Segment Anything: SAM's automatic masks, largest first, each set to "
                                         "the majority class of the semantic branch inside it (ties: the smaller "
                                         "class); pixels no mask covers keep the branch's class",
                             "quantized": {"sam": "metrics.quant: the run's quantized SAM (w_bits/a_bits, method); "
                                                  "metrics.fp: the full-precision SAM",
                                           "semantic_branch": self.branch.record},
                             "mask_generator": self.generator.as_dict(), "sam_transform": self.transform.describe(),
                             "metrics": "confusion matrix over the whole set; mIoU over classes with union > 0; "
                                        "branch_mIoU / branch_aAcc: the semantic branch alone"},
                "val": val, "calib": self.calib.describe()}

    def format_metrics(self, metrics: dict) -> str:
        return (f"mIoU {metrics['mIoU']:.2f} mAcc {metrics['mAcc']:.2f} aAcc {metrics['aAcc']:.2f} (semantic branch "
                f"alone: mIoU {metrics['branch_mIoU']:.2f}; {metrics['masks_per_image']} masks per image, "
                f"{metrics['num_images']} images)")


__all__ = ["SamSemanticEvaluator", "SamSemanticTask", "SemanticBranch"]
