"""Make ``import torchvision`` work on a CPU-only torch paired with a CUDA torchvision wheel.

PyPI's torchvision 0.28 is a CUDA build: on a CPU torch its ``_C`` extension does not load, and the
import then fails with "operator torchvision::nms does not exist" (torchvision registers fake kernels
for ``nms``/``qnms`` unconditionally). This module defines those two operators with a pure-PyTorch
kernel before torchvision is imported, and lets ``torchvision.ops.nms`` / ``batched_nms`` use it.
Where the real extension loads (a CUDA machine, a matching CPU build) it does nothing.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch

_state = {"shimmed": False}


def _real_ops_load() -> bool:
    """Return whether torchvision's compiled ops are (or can be) registered."""
    if hasattr(torch.ops, "torchvision") and _op_exists("nms"):
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # no torchvision: nothing to fix
    folder = os.path.dirname(spec.origin)
    for name in os.listdir(folder):
        if name.startswith("_C") and name.endswith((".so", ".pyd")):
            try:
                torch.ops.load_library(os.path.join(folder, name))
                return True
            except (OSError, RuntimeError):
                return False
    return False


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices sorted by decreasing score."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b = boxes[order].to(torch.float64 if boxes.dtype == torch.float64 else torch.float32)
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter)
    suppressed = torch.zeros(len(b), dtype=torch.bool, device=b.device)
    over = (iou > iou_threshold).cpu()
    keep = []
    for i in range(len(b)):  # greedy: inherently sequential over kept boxes
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i].to(suppressed.device)
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def ensure_torchvision() -> bool:
    """Install the fallback ``torchvision::nms`` if needed; return True if the shim is active."""
    if _state["shimmed"]:
        return True
    if "torchvision" in sys.modules or _real_ops_load():
        return False
    lib = torch.library.Library("torchvision", "DEF")  # noqa: F841 (kept alive below)
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms_reference, "CompositeExplicitAutograd")
    _state["lib"] = lib
    _state["shimmed"] = True
    import torchvision.ops.boxes as boxes  # noqa: E402

    boxes._assert_has_ops = lambda: None  # nms and batched_nms now run the kernel above
    return True


ensure_torchvision()
