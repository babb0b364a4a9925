"""Image classification: labelled images (ImageFolder tree, list file, or an MNIST CSV), top-1/top-5, and
KL between logits as the prediction difference's distance."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from ..data import ClassificationDataset, build_loader, build_transform, sample_calibration
from ..errors import ConfigError, DataError
from ..eval import ClassificationEvaluator
from ..recon.losses import logits_kl
from ..registry import TASKS
from .base import Task

DATA_TYPES = ("images", "mnist_csv")


def build_dataset(section: dict, transform: Any, what: str) -> Dataset:
    """Return the dataset a ``data.<split>`` section describes; raise ConfigError when it is incomplete."""
    kind = section.get("type") or "images"
    if kind == "mnist_csv":
        from ..data.mnist import MnistCsvDataset

        if not section.get("file"):
            raise ConfigError(f"{what}.file is required for type 'mnist_csv'")
        rows = section.get("rows")
        return MnistCsvDataset(section["file"], rows=tuple(rows) if rows is not None else None)
    if kind != "images":
        raise ConfigError(f"{what}.type must be one of {DATA_TYPES}, got {kind!r}")
    if not section.get("root"):
        raise ConfigError(f"{what}.root is required")
    return ClassificationDataset(section["root"], section.get("list_file"), transform=transform)


@TASKS.register_module(name="classification")
class ClassificationTask(Task):
    """Top-1/top-5 accuracy on ``data.val``; calibration images from ``data.calib``."""

    name = "classification"
    metric_keys = ("top1", "top5")
    # type 'images' (ImageFolder tree under root, or a list file) or 'mnist_csv' (file, rows [start, stop))
    data_defaults = {"type": "images", "root": None, "list_file": None, "file": None, "rows": None}

    def __init__(self, cfg: dict, preprocess: dict) -> None:
        super().__init__(cfg, preprocess)
        transform = build_transform(preprocess) if self._needs_transform() else None
        self.val_set = build_dataset(cfg["data"]["val"], transform, "data.val")
        self.calib_set = build_dataset(cfg["data"]["calib"], transform, "data.calib")
        for name, dataset in (("val", self.val_set), ("calib", self.calib_set)):
            check_labels(dataset, cfg["model"]["num_classes"], f"data.{name}")

    def _needs_transform(self) -> bool:
        return any((self.cfg["data"][s].get("type") or "images") == "images" for s in ("val", "calib"))

    def calibration(self) -> tuple[list, dict]:
        subset, info = sample_calibration(self.calib_set, self.cfg["calib"]["num_samples"], self.cfg["calib"]["seed"])
        loader = build_loader(subset, self.cfg["calib"]["batch_size"], self.cfg["data"]["num_workers"])
        return [x for x, _ in loader], info

    def evaluator(self, device: torch.device, progress: bool) -> ClassificationEvaluator:
        loader = build_loader(self.val_set, self.cfg["data"]["batch_size"], self.cfg["data"]["num_workers"])
        return ClassificationEvaluator(loader, device=device, progress=progress)

    def distance(self, reference: torch.Tensor, output: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return logits_kl(reference, output, temperature)

    def describe_data(self) -> dict:
        return {"val": self.cfg["data"]["val"], "num_val_images": len(self.val_set)}

    def format_metrics(self, metrics: dict) -> str:
        return f"top1 {metrics['top1']:.2f} top5 {metrics['top5']:.2f}"


def check_labels(dataset: Any, num_classes: int, what: str) -> None:
    """Raise DataError if a label cannot be a class of the model (it would silently count as wrong)."""
    top = max(label for _, label in dataset.samples)
    if top >= num_classes:
        raise DataError(f"{what}: label {top} is out of range for a model with {num_classes} classes")
