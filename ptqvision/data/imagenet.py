"""ImageNet-style classification data: datasets, preprocessing, calibration sampling and loaders."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from .. import _compat  # noqa: F401  (must run before torchvision is imported)
from ..errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

DEFAULT_PREPROCESS: dict[str, Any] = dict(
    resize=256,
    crop=224,
    interpolation="bilinear",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _one_line(text: str, limit: int = 80) -> str:
    """Return ``text`` made safe for a one-line error message (newlines escaped, truncated)."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ClassificationDataset(Dataset):
    """Labelled images from an ImageFolder tree or from a ``filename label`` list file.

    ``samples`` holds ``(absolute path, label)`` pairs; items are ``(transform(RGB image), label)``.
    Every listed image is checked for existence at construction so that a long evaluation or
    calibration run cannot fail halfway through on a missing file.
    """

    def __init__(self, root: str, list_file: str | None = None, transform: Callable | None = None) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.list_file = None if list_file is None else os.path.abspath(os.fspath(list_file))
        self.transform = transform
        self.classes: list[str] | None = None
        if not os.path.isdir(self.root):
            raise DataError(f"dataset root not found or not a folder: {self.root}")
        if self.list_file is None:
            self.samples = self._scan_image_folder()
        else:
            self.samples = self._read_list_file()
        if not self.samples:
            where = self.list_file if self.list_file is not None else self.root
            raise DataError(f"dataset is empty: no images found in {where}")

    def _scan_image_folder(self) -> list[tuple[str, int]]:
        """Return samples of an ImageFolder tree; class index = position of the folder name in sorted order."""
        self.classes = sorted(
            e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")
        )
        samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            class_dir = os.path.join(self.root, name)
            for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
                dirnames.sort()  # os.walk order is filesystem-dependent
                for fname in sorted(filenames):
                    if fname.lower().endswith(IMAGE_EXTENSIONS):
                        samples.append((os.path.join(dirpath, fname), label))
        return samples

    def _resolve(self, name: str) -> str | None:
        """Return the absolute path of a listed file (under root, else under root/images), or None."""
        for base in (self.root, os.path.join(self.root, "images")):
            path = os.path.normpath(os.path.join(base, name))
            if os.path.isfile(path):
                return path
        return None

    def _read_list_file(self) -> list[tuple[str, int]]:
        """Return samples parsed from ``self.list_file`` (``name label`` or ``name, label`` per line)."""
        assert self.list_file is not None
        if not os.path.isfile(self.list_file):
            raise DataError(f"list file not found: {self.list_file}")
        try:
            with open(self.list_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read list file {self.list_file}: {_one_line(str(e))}") from None
        samples: list[tuple[str, int]] = []
        missing: list[tuple[int, str]] = []
        for lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            # Split on the last separator so that file names may contain spaces when a comma is used.
            parts = line.rsplit(",", 1) if "," in line else line.rsplit(None, 1)
            parts = [p.strip() for p in parts]
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise DataError(
                    f"{self.list_file}:{lineno}: expected 'filename label' or 'filename, label', "
                    f"got {_one_line(line)!r}"
                )
            name, label_text = parts
            try:
                label = int(label_text)
            except ValueError:
                label = -1
            if label < 0:
                raise DataError(
                    f"{self.list_file}:{lineno}: label must be a non-negative integer, got {_one_line(label_text)!r}"
                )
            path = self._resolve(name)
            if path is None:
                missing.append((lineno, name))
                continue
            samples.append((path, label))
        if missing:
            lineno, name = missing[0]
            more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
            raise DataError(
                f"{self.list_file}:{lineno}: image not found: {os.path.join(self.root, name)}"
                f" (also looked in {os.path.join(self.root, 'images')}){more}"
            )
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """Return ``(transform(image), label)``; the image is a PIL RGB image when there is no transform."""
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")  # some ImageNet images are grayscale or CMYK
        except OSError as e:
            raise DataError(f"cannot decode image {path}: {_one_line(str(e))}") from None
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def relative_path(self, index: int) -> str:
        """Return the path of sample ``index`` relative to the dataset root, with '/' separators."""
        return os.path.relpath(self.samples[index][0], self.root).replace(os.sep, "/")


def build_transform(preprocess: dict) -> Callable:
    """Return a torchvision transform: Resize(short side) -> CenterCrop -> ToTensor -> Normalize.

    Keys: ``resize``, ``crop``, ``interpolation`` (bilinear|bicubic|nearest, default bilinear),
    ``mean``/``std`` on the 0..1 pixel scale. Raises ConfigError on unknown, missing or bad keys.
    """
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    if not isinstance(preprocess, dict):
        raise ConfigError(f"preprocess must be a dict, got {type(preprocess).__name__}")
    unknown = sorted(set(preprocess) - set(DEFAULT_PREPROCESS))
    if unknown:
        raise ConfigError(f"preprocess: unknown key(s) {unknown}; allowed: {sorted(DEFAULT_PREPROCESS)}")
    missing = [k for k in ("resize", "crop", "mean", "std") if k not in preprocess]
    if missing:
        raise ConfigError(f"preprocess: missing key(s) {missing}")
    interp = preprocess.get("interpolation", "bilinear")
    if interp not in _INTERPOLATIONS:
        raise ConfigError(f"preprocess.interpolation must be one of {list(_INTERPOLATIONS)}, got {interp!r}")
    for key in ("resize", "crop"):
        value = preprocess[key]
        sizes = list(value) if isinstance(value, (list, tuple)) else [value]
        if not (len(sizes) in (1, 2) and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)):
            raise ConfigError(f"preprocess.{key} must be a positive int or [h, w], got {value!r}")
    mean, std = preprocess["mean"], preprocess["std"]
    for key, value in (("mean", mean), ("std", std)):
        if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
            raise ConfigError(f"preprocess.{key} must be 3 numbers on the 0..1 scale, got {value!r}")
    if any(s <= 0 for s in std):
        raise ConfigError(f"preprocess.std must be positive, got {std!r}")
    resize = preprocess["resize"]
    crop = preprocess["crop"]
    return T.Compose(
        [
            T.Resize(
                tuple(resize) if isinstance(resize, (list, tuple)) else resize,
                interpolation=InterpolationMode(interp),
                antialias=True,
            ),
            T.CenterCrop(tuple(crop) if isinstance(crop, (list, tuple)) else crop),
            T.ToTensor(),
            T.Normalize([float(m) for m in mean], [float(s) for s in std]),
        ]
    )


def sample_calibration(dataset: ClassificationDataset, num_samples: int, seed: int) -> tuple[Subset, dict]:
    """Return ``(Subset, record)`` with ``num_samples`` distinct images chosen reproducibly from ``seed``.

    The permutation runs over the samples sorted by path, so the choice does not depend on the order
    of the list file or of the filesystem. The subset is ordered by path. ``record`` holds
    ``num_samples``, ``seed``, ``sha256`` (of the newline-joined root-relative paths) and ``files_head``.
    """
    n = len(dataset)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= n:
        raise DataError(f"calibration num_samples must be in 1..{n} (dataset size of {dataset.root}), got {num_samples!r}")
    # Tie-break equal paths by label and index so the order is total.
    by_path = sorted(range(n), key=lambda i: (dataset.samples[i][0], dataset.samples[i][1], i))
    generator = torch.Generator().manual_seed(int(seed))
    positions = sorted(torch.randperm(n, generator=generator)[:num_samples].tolist())
    indices = [by_path[p] for p in positions]
    rel = [dataset.relative_path(i) for i in indices]
    record = {
        "num_samples": num_samples,
        "seed": int(seed),
        "sha256": hashlib.sha256("\n".join(rel).encode("utf-8")).hexdigest(),
        "files_head": rel[:5],
    }
    return Subset(dataset, indices), record


def build_loader(dataset: Dataset, batch_size: int, num_workers: int = 0, shuffle: bool = False) -> DataLoader:
    """Return a DataLoader (no shuffling by default, pin_memory off, last partial batch kept)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be a non-negative int, got {num_workers!r}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=False,
        drop_last=False,
    )

