"""Semantic segmentation with SAM, as Semantic Segment Anything does it: segment-anything's automatic mask
generator proposes masks (a grid of point prompts, its predicted-IoU and stability filters, box NMS), and each
mask takes the majority class of a semantic branch's prediction inside it.

The vote (:func:`vote`): start from the semantic branch's class map; visit the masks from the largest to the
smallest; every pixel of a mask becomes the most frequent class of the branch's map inside the mask (ties: the
smallest class index). Smaller masks are visited later, so they win where masks overlap; pixels no mask covers
keep the branch's class.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class MaskGeneratorSettings:
    """segment-anything's ``SamAutomaticMaskGenerator`` arguments (its defaults)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    min_mask_region_area: int = 0

    @classmethod
    def from_cfg(cls, cfg: dict | None) -> "MaskGeneratorSettings":
        """Return the settings of ``task.mask_generator`` (unknown keys raise ConfigError)."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(asdict(cls())))
        if unknown:
            raise ConfigError(f"unknown task.mask_generator key(s) {unknown}; valid: {sorted(asdict(cls()))}")
        out = cls(**cfg)
        for key in ("points_per_side", "points_per_batch"):
            v = getattr(out, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"task.mask_generator.{key} must be a positive integer, got {v!r}")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def mask_generator(model: torch.nn.Module, settings: MaskGeneratorSettings) -> Any:
    """Return segment-anything's automatic mask generator running ``model`` (a full-precision or quantized
    SamBoxModel), with binary masks (no RLE)."""
    from segment_anything import SamAutomaticMaskGenerator

    from ..models.sam import SamPredictorView

    return SamAutomaticMaskGenerator(SamPredictorView(model), output_mode="binary_mask", **settings.as_dict())


def vote(classes: torch.Tensor, masks: Sequence[np.ndarray | torch.Tensor], num_classes: int) -> torch.Tensor:
    """Return the class map (H, W) after Semantic Segment Anything's vote of the ``masks`` (bool (H, W) each)
    on the semantic branch's map ``classes`` (H, W, int64); see the module docstring."""
    out = classes.clone()
    flat = classes.reshape(-1)
    areas = [int(m.sum()) for m in masks]
    for i in sorted(range(len(masks)), key=lambda j: -areas[j]):  # stable: equal areas keep their order
        if areas[i] == 0:
            continue
        m = torch.as_tensor(masks[i], device=classes.device).reshape(-1).bool()
        counts = torch.bincount(flat[m], minlength=num_classes)
        out.view(-1)[m] = int(counts.argmax())  # argmax returns the first maximum: ties go to the smaller class
    return out
