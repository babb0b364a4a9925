"""Finished runs as cells of a paper-style table: where each goes (row label, bits, model) and the
protocol it was measured under (placement, calibration size, evaluation data and preprocessing)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from ..errors import ReportError
from ..sweep.job import STATUS_FILE, read_status
from ..utils.atomic import read_json as read_results  # noqa: F401  (re-exported: a results.json or None)

# The number a paper's table shows for each task.
MAIN_METRICS = {"classification": "top1", "coco_instance": "segm_mAP", "semantic_segmentation": "mIoU", "sam_semantic": "mIoU"}


def main_metric(results: dict) -> str:
    """Return the metric a table shows by default for a run's task (its first metric for other tasks)."""
    task = results.get("task", "classification")
    if task in MAIN_METRICS:
        return MAIN_METRICS[task]
    return next(iter(results["metrics"]["quant"]))


@dataclass
class Cell:
    """One finished run: its row ``label`` (the method unless the sweep named it), its results, its file."""

    label: str
    results: dict
    source: str

    @property
    def model(self) -> str:
        return self.results["model"]

    @property
    def bits(self) -> tuple[int, int]:
        return int(self.results["w_bits"]), int(self.results["a_bits"])

    def describe(self) -> str:
        """Return the cell as a reader names it: model, row, bits."""
        return f"{self.model} {display(self.label)} {bits_name(self.bits)}"

    def value(self, metric: str) -> float | None:
        """Return a quantized metric, or with a dotted name any number of results.json (``time_s.total``)."""
        node = self.results if "." in metric else self.results["metrics"]["quant"]
        for part in metric.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None

    def fp(self, metric: str) -> float | None:
        """Return the full-precision value of a metric, if the run measured it."""
        value = self.results["metrics"].get("fp", {}).get(metric) if "." not in metric else None
        return float(value) if value is not None else None

    @property
    def calib_size(self) -> int | None:
        return self.results.get("calib", {}).get("num_samples")

    @property
    def evaluation(self) -> dict:
        """The evaluation protocol shared by a whole table: task and evaluation data (the task's record)."""
        return {"task": self.results.get("task", "classification"), "data": self.results.get("data", {})}

    @property
    def preprocess(self) -> dict:
        return self.results.get("preprocess", {})

    def placement(self) -> list[tuple]:
        """Return the placement rows as (name, kind, bits, granularity, symmetric, observer, type)."""
        return [(r.get("name"), r.get("kind"), r.get("bits"), r.get("granularity"), r.get("symmetric"),
                 r.get("observer"), r.get("type")) for r in self.results.get("placement", [])]


METHOD_NAMES = {"rtn": "RTN", "adaround": "AdaRound", "brecq": "BRECQ", "qdrop": "QDrop", "pdquant": "PD-Quant",
                "repqvit": "RepQ-ViT", "adalog": "AdaLog", "aphq_vit": "APHQ-ViT", "fima_q": "FIMA-Q",
                "is_vit": "I&S-ViT"}


def display(label: str) -> str:
    """Return a row label as printed: the paper's spelling of a method name, other labels as they are."""
    return METHOD_NAMES.get(label, label)


def bits_name(bits: tuple[int, int]) -> str:
    return f"W{bits[0]}A{bits[1]}"


def load_cells(inputs: Sequence[str]) -> tuple[list[Cell], list[str]]:
    """Return the cells of results.json files, work dirs, sweeps and folders holding them (searched
    recursively, skipping ``previous/`` archives), and one note per sweep job without a result."""
    cells: list[Cell] = []
    notes: list[str] = []
    for path in inputs:
        if not os.path.exists(path):
            raise ReportError(f"no such file or folder: {path}")
        if os.path.isfile(path):
            cells.append(_cell(path, None))
            continue
        for folder, subdirs, files in os.walk(path):
            subdirs.sort()
            if STATUS_FILE in files:
                _load_sweep(folder, cells, notes)
                subdirs[:] = []
            elif "results.json" in files:
                cells.append(_cell(os.path.join(folder, "results.json"), None))
                subdirs[:] = []
            subdirs[:] = [d for d in subdirs if d != "previous"]
    if not cells:
        raise ReportError(f"no results.json in {', '.join(inputs)}")
    return cells, notes


def _cell(path: str, label: str | None) -> Cell:
    res = read_results(path)
    if res is None:
        raise ReportError(f"cannot read {path}")
    missing = [k for k in ("model", "method", "w_bits", "a_bits", "metrics") if k not in res]
    if missing or "quant" not in res.get("metrics", {}):
        raise ReportError(f"{path} is not a ptqvision results.json (missing {', '.join(missing) or 'metrics.quant'})")
    return Cell(label or res["method"], res, path)


def _load_sweep(folder: str, cells: list[Cell], notes: list[str]) -> None:
    try:
        jobs = read_status(folder)["jobs"]
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    for name, rec in jobs.items():
        path = os.path.join(folder, name, "results.json")
        if rec.get("state") == "done" and os.path.isfile(path):
            cells.append(_cell(path, rec.get("label")))
        else:
            reason = f": {rec['reason']}" if rec.get("reason") else ""
            notes.append(f"{name}: {rec.get('state', 'unknown')}{reason}")
