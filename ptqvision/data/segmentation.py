"""Semantic-segmentation data: image / label-map pairs from an ADE20K, Cityscapes or Pascal VOC folder layout or a
list file, label loading that keeps raw class indices, the evaluation preprocessing, and calibration crops.

Layouts (``data.<split>.type``; ``root`` is the dataset folder, ``split`` the sub-set):

- ``ade20k``: ``root/images/<split>/*.jpg`` and ``root/annotations/<split>/<stem>.png`` (split ``training`` or
  ``validation``; ``root`` is ``ADEChallengeData2016``);
- ``cityscapes``: ``root/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` and
  ``root/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` (the 19 train ids, 255 ignore, made by
  cityscapesscripts' ``createTrainIdLabelImgs``);
- ``voc``: ``root/ImageSets/Segmentation/<split>.txt`` names the images ``root/JPEGImages/<id>.jpg`` and labels
  ``root/SegmentationClass/<id>.png`` (palette PNGs whose indices are the classes, 255 the boundary; ``root`` is
  ``VOC2012``);
- ``list``: ``list_file`` has one ``image_path label_path`` line per sample (a calibration list may give the image
  only), paths relative to ``root`` (default: the list file's folder); ``#`` starts a comment.

Label maps are read with PIL as they are stored (mode L, P, I or I;16): a palette PNG's indices are its classes and
it is never converted to RGB. ``reduce_zero_label`` (ADE20K) maps 0 to the ignore index and every other class c to
c - 1. Bad input is a one-line :class:`~ptqvision.errors.DataError` naming the file: a missing image or label map,
a label map whose size differs from its image's (checked for every pair up front, from the file headers), a class
index ≥ num_classes that is not the ignore index (checked on every label map up front when ``scan`` is on, and
again on each map as it is loaded).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, DataError

LAYOUTS = ("ade20k", "cityscapes", "voc", "list")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LABEL_MODES = ("L", "P", "I", "I;16")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelTrainIds.png"


@dataclass(frozen=True)
class SegSample:
    """One image and its label map (absolute paths; ``label`` None for calibration images listed alone)."""

    image: str
    label: str | None


@dataclass(frozen=True)
class SegSplit:
    """The samples of one ``data.<split>`` section, sorted by image path, and where they come from."""

    layout: str
    root: str
    split: str | None
    list_file: str | None
    samples: tuple[SegSample, ...]

    def relative(self, path: str) -> str:
        """Return ``path`` relative to the root, with '/' separators."""
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def files_sha256(self, samples: Sequence[SegSample] | None = None) -> str:
        """Return the SHA-256 of the newline-joined root-relative ``image label`` lines of ``samples`` (default all)."""
        lines = [self.relative(s.image) + (" " + self.relative(s.label) if s.label else "")
                 for s in (self.samples if samples is None else samples)]
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()

    def describe(self) -> dict:
        """Return the layout, root, split, list file, number of samples and the file list's hash."""
        return {"type": self.layout, "root": self.root, "split": self.split, "list_file": self.list_file,
                "num_images": len(self.samples), "files_sha256": self.files_sha256()}


def _require(section: dict, key: str, what: str, layout: str) -> Any:
    value = section.get(key)
    if value in (None, ""):
        raise ConfigError(f"{what}.{key} is required for type '{layout}'")
    return value


def _folder(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise DataError(f"{what}: folder not found: {path}")
    return path


def _listdir(folder: str, suffix: tuple[str, ...]) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(suffix))


def _missing(pairs: list[tuple[str, str | None]], what: str, need_labels: bool) -> None:
    """Raise DataError naming the first missing image or label map (and how many more are missing)."""
    gone = [(kind, p) for img, lab in pairs for kind, p in (("image", img), ("label map", lab))
            if p is not None and (kind == "image" or need_labels) and not os.path.isfile(p)]
    if gone:
        kind, path = gone[0]
        more = f" (and {len(gone) - 1} more missing)" if len(gone) > 1 else ""
        raise DataError(f"{what}: {kind} not found: {path}{more}")


def scan_split(section: dict, what: str, need_labels: bool = True) -> SegSplit:
    """Return the samples a ``data.<split>`` section names, sorted by image path; ConfigError for a bad section,
    DataError (naming the file) for a missing one. ``need_labels`` False: label maps are not required
    (calibration reads images only)."""
    layout = section.get("type") or "list"
    if layout not in LAYOUTS:
        raise ConfigError(f"{what}.type must be one of {LAYOUTS} for task semantic_segmentation, got {layout!r}")
    split = section.get("split")
    list_file = section.get("list_file")
    if layout == "list":
        list_file = os.path.abspath(os.fspath(_require(section, "list_file", what, layout)))
        root = os.path.abspath(os.fspath(section.get("root") or os.path.dirname(list_file)))
        pairs = _read_list(list_file, root, what, need_labels)
    else:
        if list_file:
            raise ConfigError(f"{what}.list_file is only read for type 'list' (type is '{layout}')")
        root = os.path.abspath(os.fspath(_require(section, "root", what, layout)))
        _folder(root, what)
        split = _require(section, "split", what, layout)
        pairs = {"ade20k": _ade20k, "cityscapes": _cityscapes, "voc": _voc}[layout](root, split, what)
    if not pairs:
        raise DataError(f"{what}: no images found ({layout} layout under {root}"
                        + (f", split {split!r})" if split else f", list file {list_file})"))
    _missing(pairs, what, need_labels)
    samples = tuple(SegSample(img, lab if need_labels else None)
                    for img, lab in sorted(pairs, key=lambda p: (p[0], p[1] or "")))
    return SegSplit(layout, root, split, list_file, samples)


def _ade20k(root: str, split: str, what: str) -> list[tuple[str, str]]:
    images = _folder(os.path.join(root, "images", split), what)
    labels = os.path.join(root, "annotations", split)
    return [(os.path.join(images, f), os.path.join(labels, os.path.splitext(f)[0] + ".png"))
            for f in _listdir(images, IMAGE_EXTENSIONS)]


def _cityscapes(root: str, split: str, what: str) -> list[tuple[str, str]]:
    images = _folder(os.path.join(root, "leftImg8bit", split), what)
    pairs = []
    for city in sorted(e.name for e in os.scandir(images) if e.is_dir()):
        for f in _listdir(os.path.join(images, city), (CITYSCAPES_IMAGE_SUFFIX.lower(),)):
            stem = f[: -len(CITYSCAPES_IMAGE_SUFFIX)]
            pairs.append((os.path.join(images, city, f),
                          os.path.join(root, "gtFine", split, city, stem + CITYSCAPES_LABEL_SUFFIX)))
    return pairs


def _voc(root: str, split: str, what: str) -> list[tuple[str, str]]:
    ids_file = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    if not os.path.isfile(ids_file):
        raise DataError(f"{what}: VOC split file not found: {ids_file}")
    with open(ids_file, encoding="utf-8") as f:
        ids = [line.split()[0] for line in f if line.strip()]
    return [(os.path.join(root, "JPEGImages", i + ".jpg"), os.path.join(root, "SegmentationClass", i + ".png"))
            for i in ids]


def _read_list(list_file: str, root: str, what: str, need_labels: bool) -> list[tuple[str, str | None]]:
    if not os.path.isfile(list_file):
        raise DataError(f"{what}: list file not found: {list_file}")
    try:
        with open(list_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{what}: cannot read list file {list_file}: {type(exc).__name__}") from None
    pairs: list[tuple[str, str | None]] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2 or (len(parts) == 1 and need_labels):
            raise DataError(f"{list_file}:{lineno}: expected 'image_path label_path', got {line[:80]!r}")
        image = os.path.normpath(os.path.join(root, parts[0]))
        label = os.path.normpath(os.path.join(root, parts[1])) if len(parts) == 2 else None
        pairs.append((image, label))
    return pairs


# --------------------------------------------------------------------------------------------- labels
def image_size(path: str) -> tuple[int, int]:
    """Return (height, width) of an image file from its header; DataError naming the file if it is unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {str(exc).splitlines()[0][:120]}") from None
    return h, w


def check_sizes(samples: Sequence[SegSample]) -> None:
    """Raise DataError naming the first label map whose size differs from its image's (file headers only)."""
    for s in samples:
        if s.label is None:
            continue
        hi, hl = image_size(s.image), image_size(s.label)
        if hi != hl:
            raise DataError(f"label map {s.label} is {hl[0]}x{hl[1]} (HxW) but its image {s.image} is "
                            f"{hi[0]}x{hi[1]}")


@dataclass(frozen=True)
class LabelRules:
    """How raw label values become class indices, and which are valid."""

    num_classes: int
    ignore_index: int = 255
    reduce_zero_label: bool = False

    def describe(self) -> dict:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index,
                "reduce_zero_label": self.reduce_zero_label}


def load_label(path: str, rules: LabelRules) -> np.ndarray:
    """Return the class index per pixel (H, W) int64 of a label map: raw indices as stored (a palette PNG's
    indices, never its colours), ``reduce_zero_label`` applied (0 → ignore, c → c - 1); DataError naming the file
    for an RGB map or a class index ≥ num_classes that is not the ignore index."""
    try:
        with Image.open(path) as im:
            if im.mode not in LABEL_MODES:
                raise DataError(f"label map {path} has mode {im.mode}: expected one class index per pixel "
                                f"(mode {', '.join(LABEL_MODES)}), not colours")
            raw = np.array(im)
    except OSError as exc:
        raise DataError(f"cannot read label map {path}: {str(exc).splitlines()[0][:120]}") from None
    label = raw.astype(np.int64)
    if rules.reduce_zero_label:
        ignore = (label == 0) | (label == rules.ignore_index)
        label = label - 1
        label[ignore] = rules.ignore_index
    bad = (label != rules.ignore_index) & ((label >= rules.num_classes) | (label < 0))
    if bad.any():
        value = int(label[bad][0])
        stored = f" (stored as {int(raw[bad][0])}, reduce_zero_label on)" if rules.reduce_zero_label else ""
        raise DataError(f"label map {path}: class index {value}{stored} is out of range for {rules.num_classes} "
                        f"classes and is not the ignore index {rules.ignore_index} ({int(bad.sum())} pixels)")
    return label


def scan_labels(samples: Sequence[SegSample], rules: LabelRules) -> None:
    """Decode every label map and raise DataError naming the first with an out-of-range class index."""
    for s in samples:
        if s.label is not None:
            load_label(s.label, rules)


# ----------------------------------------------------------------------------------------- preprocessing
def _pair(value: Any, key: str) -> tuple[int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"{key} must be [height, width] (two positive integers), got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class SegPreprocess:
    """The image preprocessing of the evaluation protocol: resize, then normalise.

    ``resize``: None (keep the image size); an int S (short side to S, ratio kept); a pair [a, b] with
    ``keep_ratio`` (mmseg's ``Resize(scale=(a, b), keep_ratio=True)``: scale by min(max(a, b) / long side,
    min(a, b) / short side)) or without it (exactly a x b, height x width). Images are resized as float tensors
    with ``interpolation`` (bilinear: half-pixel centres, no antialiasing, as OpenCV's INTER_LINEAR).
    """

    resize: int | tuple[int, int] | None = None
    keep_ratio: bool = True
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_settings(cls, resize: Any, keep_ratio: Any, preprocess: dict) -> SegPreprocess:
        """Return the preprocessing of ``task.resize`` / ``task.keep_ratio`` and the model's mean, std and
        interpolation (``preprocess``); ConfigError on a bad value."""
        if resize is not None and not (isinstance(resize, int) and not isinstance(resize, bool) and resize > 0):
            resize = _pair(resize, "task.resize")
        if not isinstance(keep_ratio, bool):
            raise ConfigError(f"task.keep_ratio must be true or false, got {keep_ratio!r}")
        interp = preprocess.get("interpolation") or "bilinear"
        if interp not in INTERPOLATIONS:
            raise ConfigError(f"data.preprocess.interpolation must be one of {INTERPOLATIONS}, got {interp!r}")
        mean, std = preprocess.get("mean"), preprocess.get("std")
        for key, value in (("mean", mean), ("std", std)):
            if not (isinstance(value, (list, tuple)) and len(value) == 3
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise ConfigError(f"data.preprocess.{key} must be 3 numbers on the 0..1 scale, got {value!r}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"data.preprocess.std must be positive, got {std!r}")
        return cls(resize, keep_ratio, interp, tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the (height, width) an image of this size is resized to."""
        if self.resize is None:
            return height, width
        if isinstance(self.resize, int):
            scale = self.resize / min(height, width)
        elif self.keep_ratio:
            a, b = self.resize
            scale = min(max(a, b) / max(height, width), min(a, b) / min(height, width))
        else:
            return self.resize
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))

    def image(self, path: str) -> torch.Tensor:
        """Return the image file as a normalised float tensor (3, h, w) at the protocol's size."""
        try:
            with Image.open(path) as im:
                rgb = np.array(im.convert("RGB"))
        except OSError as exc:
            raise DataError(f"cannot decode image {path}: {str(exc).splitlines()[0][:120]}") from None
        return self.tensor(rgb)

    def tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """Return an RGB uint8 array (H, W, 3) resized and normalised as a float tensor (3, h, w)."""
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        size = self.target_size(x.shape[1], x.shape[2])
        if size != tuple(x.shape[1:]):
            mode = self.interpolation
            kwargs = {} if mode == "nearest" else {"align_corners": False}
            x = F.interpolate(x[None], size=size, mode=mode, **kwargs)[0]
            if mode == "bicubic":
                x = x.clamp_(0.0, 1.0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def describe(self) -> dict:
        """Return the preprocessing as results.json records it."""
        if self.resize is None:
            how = "none (original size)"
        elif isinstance(self.resize, int):
            how = f"short side to {self.resize}, ratio kept"
        elif self.keep_ratio:
            how = f"scale {list(self.resize)} with ratio kept (mmseg keep_ratio)"
        else:
            how = f"to {self.resize[0]}x{self.resize[1]} (HxW)"
        return {"resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
                "keep_ratio": self.keep_ratio, "how": how, "interpolation": self.interpolation,
                "mean": list(self.mean), "std": list(self.std), "labels": "never resized (logits are)"}


def crop_or_pad(x: torch.Tensor, size: tuple[int, int], top: int, left: int) -> torch.Tensor:
    """Return the (C, h, w) window of ``x`` (C, H, W) at (top, left), zero-padded at the bottom and right where the
    image is smaller than the window (zero is the mean colour after normalisation)."""
    h, w = size
    window = x[:, top:top + h, left:left + w]
    ph, pw = h - window.shape[1], w - window.shape[2]
    return F.pad(window, (0, pw, 0, ph)) if ph or pw else window


class SegEvalSet(torch.utils.data.Dataset):
    """Evaluation samples: ``(image (3, h, w) preprocessed, label (H, W) int64 at the original size, index)``."""

    def __init__(self, split: SegSplit, samples: Sequence[SegSample], preprocess: SegPreprocess,
                 rules: LabelRules) -> None:
        self.split, self.samples, self.preprocess, self.rules = split, list(samples), preprocess, rules

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        s = self.samples[index]
        image = self.preprocess.image(s.image)
        label = torch.from_numpy(load_label(s.label, self.rules))
        return image, label, index


def sample_indices(n: int, num_samples: int, seed: int, what: str) -> list[int]:
    """Return ``num_samples`` distinct positions in 0..n-1 drawn with ``seed`` (sorted); DataError if too many."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= n:
        raise DataError(f"calib.num_samples must be in 1..{n} (the images of {what}), got {num_samples!r}")
    generator = torch.Generator().manual_seed(int(seed))
    return sorted(torch.randperm(n, generator=generator)[:num_samples].tolist())


def calibration_crops(split: SegSplit, num_samples: int, seed: int, crop: tuple[int, int],
                      preprocess: SegPreprocess, batch_size: int, what: str = "data.calib") -> tuple[list[torch.Tensor], dict]:
    """Return (batches (B, 3, h, w) of fixed-size crops, record) for calibration: ``num_samples`` images drawn with
    ``seed`` from the split's images sorted by path, each preprocessed as for evaluation and cropped to ``crop``
    at a position drawn from the same seed (zero-padded where the image is smaller). The record holds
    num_samples, seed, sha256 of the chosen files, the crop and the first files."""
    chosen = [split.samples[i] for i in sample_indices(len(split.samples), num_samples, seed, what)]
    generator = torch.Generator().manual_seed(int(seed) + 1)  # the crop positions: their own stream
    crops = []
    for s in chosen:
        x = preprocess.image(s.image)
        h, w = x.shape[1:]
        top = int(torch.randint(0, max(h - crop[0], 0) + 1, (1,), generator=generator))
        left = int(torch.randint(0, max(w - crop[1], 0) + 1, (1,), generator=generator))
        crops.append(crop_or_pad(x, crop, top, left))
    batches = [torch.stack(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]
    images_only = [SegSample(s.image, None) for s in chosen]  # the hash covers what calibration reads
    record = {"num_samples": len(chosen), "seed": int(seed), "sha256": split.files_sha256(images_only),
              "crop": list(crop), "files_head": [split.relative(s.image) for s in chosen[:5]]}
    return batches, record


__all__ = ["LAYOUTS", "LabelRules", "SegEvalSet", "SegPreprocess", "SegSample", "SegSplit", "calibration_crops",
           "check_sizes", "crop_or_pad", "image_size", "load_label", "sample_indices", "scan_labels", "scan_split"]
