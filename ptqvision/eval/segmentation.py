"""Semantic segmentation scoring: a confusion matrix accumulated over the whole set, whole-image and
sliding-window inference, and mIoU / per-class IoU / accuracies from the matrix.

The protocol is mmseg's: the logits at the preprocessed image's size are resized to the label map's original size
(bilinear, ``align_corners`` False by default) before the argmax, labels are never resized; pixels labelled with
the ignore index count nowhere; IoU_c = TP / (TP + FP + FN) from the matrix of the whole set, and mIoU is the mean
over the classes present in the labels or the predictions (union > 0); a class absent from both has IoU None and
is left out of the mean. aAcc is the fraction of labelled pixels predicted right; mAcc the mean over classes
present in the labels of TP / (TP + FN).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..errors import DataError

INFERENCE_MODES = ("whole", "slide")


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Return the (num_classes, num_classes) int64 confusion matrix of ``pred`` against ``label`` (rows: label,
    columns: prediction) over the pixels whose label is not ``ignore_index``, on ``pred``'s device."""
    label = label.to(pred.device)
    valid = label != ignore_index
    index = label[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(conf: torch.Tensor, class_names: Sequence[str]) -> dict:
    """Return ``{"mIoU", "mAcc", "aAcc"}`` in percent from a confusion matrix (rows label, columns prediction),
    with ``per_class`` {name: IoU % or None for a class absent from labels and predictions}, ``per_class_acc``
    {name: accuracy % or None for a class absent from the labels}, ``num_classes_present`` and ``num_pixels``."""
    conf = conf.double().cpu()
    tp = conf.diag()
    label_area, pred_area = conf.sum(1), conf.sum(0)
    union = label_area + pred_area - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    labelled = label_area > 0
    acc = torch.where(labelled, tp / label_area.clamp(min=1), torch.full_like(tp, float("nan")))
    total = float(conf.sum())
    if total == 0:
        raise DataError("no labelled pixel in the evaluation set (every pixel is the ignore index)")

    def pct(values: torch.Tensor, mask: torch.Tensor) -> float:
        return 100.0 * float(values[mask].mean()) if bool(mask.any()) else 0.0

    return {
        "mIoU": pct(iou, present),
        "mAcc": pct(acc, labelled),
        "aAcc": 100.0 * float(tp.sum()) / total,
        "per_class": {name: (100.0 * float(v) if bool(p) else None) for name, v, p in zip(class_names, iou, present)},
        "per_class_acc": {name: (100.0 * float(v) if bool(p) else None) for name, v, p in zip(class_names, acc, labelled)},
        "num_classes_present": int(present.sum()),
        "num_pixels": int(total),
    }


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, dict):  # a torchvision segmentation model used as is
        out = out["out"]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise DataError(f"a segmentation model must return logits (B, C, H, W), got "
                        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


def whole_inference(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Return the logits (B, C, H, W) of the model on the whole image batch (B, 3, H, W)."""
    return _logits(model, image)


def slide_windows(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Return the windows (top, left, bottom, right) of mmseg's sliding inference: a grid of ``stride`` steps whose
    last row and column are moved back to end at the image border; a window is cut to the image where the image is
    smaller than it."""
    ch, cw = crop
    sh, sw = stride
    rows = max(height - ch + sh - 1, 0) // sh + 1
    cols = max(width - cw + sw - 1, 0) // sw + 1
    out = []
    for r in range(rows):
        for c in range(cols):
            bottom, right = min(r * sh + ch, height), min(c * sw + cw, width)
            out.append((max(bottom - ch, 0), max(right - cw, 0), bottom, right))
    return out


def slide_inference(model: nn.Module, image: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int],
                    batch_size: int = 1) -> torch.Tensor:
    """Return the logits (1, C, H, W) of sliding-window inference on one image (1, 3, H, W): the logits of
    overlapping windows are averaged (mmseg's ``slide`` mode). A window larger than the image is run zero-padded
    at the bottom and right to its full size (zero is the mean colour after normalisation) and its logits are cut
    back; windows are run ``batch_size`` at a time."""
    if image.shape[0] != 1:
        raise ValueError(f"slide_inference takes one image, got a batch of {image.shape[0]}")
    _, _, h, w = image.shape
    windows = slide_windows(h, w, crop, stride)
    total = count = None
    for start in range(0, len(windows), batch_size):
        chunk = windows[start:start + batch_size]
        crops = []
        for top, left, bottom, right in chunk:
            x = image[:, :, top:bottom, left:right]
            ph, pw = crop[0] - x.shape[2], crop[1] - x.shape[3]
            crops.append(F.pad(x, (0, max(pw, 0), 0, max(ph, 0))) if ph > 0 or pw > 0 else x)
        logits = _logits(model, torch.cat(crops))
        if total is None:
            total = logits.new_zeros((1, logits.shape[1], h, w))
            count = logits.new_zeros((1, 1, h, w))
        for k, (top, left, bottom, right) in enumerate(chunk):
            total[:, :, top:bottom, left:right] += logits[k:k + 1, :, :bottom - top, :right - left]
            count[:, :, top:bottom, left:right] += 1
    return total / count


@dataclass(frozen=True)
class InferenceSettings:
    """How the model is run on an image and its logits brought to the label's size."""

    mode: str = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    align_corners: bool = False
    batch_size: int = 1  # windows per forward (slide)

    def run(self, model: nn.Module, image: torch.Tensor, label_size: tuple[int, int]) -> torch.Tensor:
        """Return the logits (1, C, H, W) of one preprocessed image (1, 3, h, w) at the label's size (H, W)."""
        if self.mode == "slide":
            logits = slide_inference(model, image, self.crop_size, self.stride, self.batch_size)
        else:
            logits = whole_inference(model, image)
        if tuple(logits.shape[-2:]) != tuple(label_size):
            logits = F.interpolate(logits, size=tuple(label_size), mode="bilinear", align_corners=self.align_corners)
        return logits

    def describe(self) -> dict:
        out: dict[str, Any] = {"mode": self.mode, "logits_to_label_size": "bilinear",
                               "align_corners": self.align_corners}
        if self.mode == "slide":
            out.update(crop_size=list(self.crop_size), stride=list(self.stride),
                       overlap="logits averaged", small_image="window zero-padded (normalised), logits cut back")
        return out


class SegmentationEvaluator:
    """mIoU, mAcc, aAcc (percent) and per-class IoU of a model over ``loader`` of ``(image (1, 3, h, w) or (3, h, w),
    label (H, W), index)`` samples, from one confusion matrix accumulated on ``device``."""

    def __init__(self, loader: Iterable, num_classes: int, class_names: Sequence[str], inference: InferenceSettings,
                 ignore_index: int = 255, device: str | torch.device = "cpu", progress: bool = True,
                 names: Sequence[str] | None = None, desc: str = "eval") -> None:
        self.loader = loader
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.inference = inference
        self.ignore_index = ignore_index
        self.device = torch.device(device)
        self.progress = progress
        self.names = names  # the label file of each sample index, for error messages
        self.desc = desc

    def _where(self, index: int) -> str:
        return f"label map {self.names[index]}" if self.names is not None else f"sample {index}"

    def evaluate(self, model: nn.Module) -> dict:
        """Return the metrics of :func:`segmentation_metrics` and ``num_images``; leaves ``model`` in eval mode.
        The model must already be on ``self.device``."""
        model.eval()
        c = self.num_classes
        conf = torch.zeros((c, c), dtype=torch.int64, device=self.device)
        seen = 0
        bar = tqdm(self.loader, desc=self.desc, disable=not self.progress, leave=False, dynamic_ncols=True,
                   unit="img")
        with torch.inference_mode():
            for image, label, index in bar:
                image = image.to(self.device)
                image = image[None] if image.dim() == 3 else image
                label = torch.as_tensor(label).to(self.device)
                index = int(index)
                logits = self.inference.run(model, image, tuple(label.shape[-2:]))
                if logits.shape[1] != c:
                    raise DataError(f"the model gives {logits.shape[1]} class logits, the task has {c} classes "
                                    f"(task.num_classes / model.num_classes)")
                valid = label != self.ignore_index
                if bool((label[valid] >= c).any()) or bool((label[valid] < 0).any()):
                    raise DataError(f"{self._where(index)}: class index out of range for {c} classes")
                conf += confusion_matrix(logits.argmax(1)[0], label.reshape(logits.shape[-2:]), c, self.ignore_index)
                seen += 1
        bar.close()
        if seen == 0:
            raise DataError(f"evaluation '{self.desc}': no images to evaluate")
        return {**segmentation_metrics(conf, self.class_names), "num_images": seen}


__all__ = ["INFERENCE_MODES", "InferenceSettings", "SegmentationEvaluator", "confusion_matrix",
           "segmentation_metrics", "slide_inference", "slide_windows", "whole_inference"]
