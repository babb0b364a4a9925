"""Published numbers, one JSON file per paper in ``ptqvision/report/papers/``, with their source and the
protocol the paper declares (task, metric, calibration size, evaluation set, placement settings).

A file: ``{"name", "title", "venue", "arxiv", "table", "transcribed_from", "notes", "protocol": {"task",
"metric", "calib_num_samples", "num_val_images", "val", "quant": {quant.* key: value}}, "fp": {model:
value}, "results": [{"method", "w_bits", "a_bits", "values": {model: value}, "note"}]}``; models are named
as our results.json name them (``model``), methods as our ``method.type`` (other papers' methods by their
own short names). Protocol entries a paper does not state are left out and not checked.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from ..errors import ReportError

PAPERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "papers")


@dataclass
class Paper:
    """One paper's published numbers."""

    name: str
    title: str
    protocol: dict
    fp: dict[str, float]
    results: list[dict]
    source: dict
    path: str

    @property
    def metric(self) -> str:
        return self.protocol["metric"]

    def value(self, method: str, model: str, bits: tuple[int, int]) -> float | None:
        """Return the published number of a cell, or None."""
        for row in self.results:
            if row["method"] == method and (row["w_bits"], row["a_bits"]) == bits and model in row["values"]:
                return float(row["values"][model])
        return None

    def cite(self) -> str:
        """Return the paper as a one-line reference."""
        parts = [self.source.get("venue"), f"arXiv {self.source['arxiv']}" if self.source.get("arxiv") else None,
                 self.source.get("table")]
        where = ", ".join(p for p in parts if p)
        return f"{self.title} ({where})" if where else self.title


def available_papers() -> list[str]:
    """Return the names of the packaged paper files."""
    return sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(PAPERS_DIR, "*.json")))


def load_paper(name_or_path: str) -> Paper:
    """Return a packaged paper by name, or a paper file by path; ReportError if it is missing or malformed."""
    path = name_or_path if name_or_path.endswith(".json") else os.path.join(PAPERS_DIR, f"{name_or_path}.json")
    if not os.path.isfile(path):
        raise ReportError(f"unknown paper {name_or_path!r}; known: {', '.join(available_papers())} "
                          "(or the path of a paper .json file)")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read paper file {path}: {exc}") from None
    where = f"paper file {path}"
    for key in ("name", "title", "protocol", "fp", "results"):
        if key not in data:
            raise ReportError(f"{where} has no '{key}'")
    protocol = data["protocol"]
    if not isinstance(protocol, dict) or not {"task", "metric"} <= set(protocol):
        raise ReportError(f"{where}: protocol must give at least task and metric")
    _numbers(data["fp"], f"{where}: fp")
    for i, row in enumerate(data["results"]):
        if not isinstance(row, dict) or not {"method", "w_bits", "a_bits", "values"} <= set(row):
            raise ReportError(f"{where}: results[{i}] needs method, w_bits, a_bits and values")
        if not all(isinstance(row[k], int) and 1 <= row[k] <= 32 for k in ("w_bits", "a_bits")):
            raise ReportError(f"{where}: results[{i}] bits must be integers")
        _numbers(row["values"], f"{where}: results[{i}].values")
    source = {k: data.get(k) for k in ("venue", "arxiv", "table", "transcribed_from", "notes", "authors")}
    return Paper(data["name"], data["title"], protocol, data["fp"], data["results"], source, path)


def _numbers(mapping: object, where: str) -> None:
    if not isinstance(mapping, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in mapping.values()):
        raise ReportError(f"{where} must map model names to numbers")
