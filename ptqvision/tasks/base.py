"""The interface of a task: calibration data, the model's forward on it, the distance the prediction
difference uses, and the evaluator. The runner names no dataset; a new dataset is a new task."""
from __future__ import annotations

from typing import Any

import torch


class Task:
    """Subclasses register with ``@TASKS.register_module(name=...)`` and are built from the resolved config
    and the model's preprocessing."""

    name = "base"
    metric_keys: tuple[str, ...] = ()
    #: the task's own ``task.*`` config keys with their defaults (beside ``type``)
    defaults: dict = {}
    #: the keys of ``data.calib`` and ``data.val`` with their defaults
    data_defaults: dict = {}

    def __init__(self, cfg: dict, preprocess: dict) -> None:
        self.cfg = cfg
        self.preprocess = preprocess

    def calibration(self) -> tuple[list[Any], dict]:
        """Return (calibration batches: tensors or tuples of tensors, one per model input; a record with
        num_samples, seed and sha256 of the chosen samples)."""
        raise NotImplementedError

    def evaluator(self, device: torch.device, progress: bool) -> Any:
        """Return an object whose ``evaluate(model)`` returns the metrics dict."""
        raise NotImplementedError

    def distance(self, reference: torch.Tensor, output: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Return the distance between full-precision and quantized outputs (prediction difference)."""
        raise NotImplementedError

    def describe_data(self) -> dict:
        """Return what results.json records about the evaluation data and protocol."""
        return {}

    def format_metrics(self, metrics: dict) -> str:
        """Return the metrics as a short log string."""
        return " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float))
