"""COCO instance-segmentation data for box-prompted SAM: annotation files, a detector's COCO results JSON,
the box filter of an evaluation protocol, and SAM's image, box and mask transforms.

Every reader checks its input once and raises a one-line :class:`DataError` that names the file, so that a
bad path or a malformed file fails before any quantization work.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import _compat  # noqa: F401  (segment-anything imports torchvision)
from ..errors import ConfigError, DataError
from .imagenet import _one_line

_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


# ----------------------------------------------------------------------------------------------------------
# files


def read_json(path: str, what: str) -> tuple[Any, str]:
    """Return (parsed JSON, sha256 of the file's bytes); DataError naming ``what`` and the file if it is
    missing, unreadable or not JSON."""
    if not path or not isinstance(path, str):
        raise DataError(f"{what} must be a file path, got {path!r}")
    if not os.path.isfile(path):
        raise DataError(f"{what} not found: {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {_one_line(str(exc))}") from None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{what} {path} is not JSON: {_one_line(str(exc))}") from None
    return obj, hashlib.sha256(raw).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _first(values: Iterable[Any], n: int = 5) -> str:
    out = []
    for v in values:
        if len(out) == n:
            out.append("...")
            break
        out.append(str(v))
    return ", ".join(out)


# ----------------------------------------------------------------------------------------------------------
# annotations


@dataclass(frozen=True)
class CocoImage:
    """One entry of an annotation file's ``images`` list."""

    id: int
    file_name: str
    height: int
    width: int


@dataclass
class CocoAnnotations:
    """A checked COCO annotation file: its images in file order, category ids, and the parsed file for
    pycocotools (annotations completed with ``iscrowd`` 0 and their mask ``area`` where missing)."""

    path: str
    sha256: str
    images: list[CocoImage]
    category_ids: frozenset[int]
    dataset: dict

    def image_by_id(self) -> dict[int, CocoImage]:
        """Return the images keyed by id."""
        return {im.id: im for im in self.images}


def load_coco_annotations(path: str, what: str = "ann_file", annotations: str = "segm") -> CocoAnnotations:
    """Return the checked annotation file at ``path``.

    ``annotations``: 'segm' checks and keeps the ``annotations`` list for segm evaluation (ids, an image and a
    category that exist, a polygon or RLE ``segmentation``); 'boxes' for ground-truth box prompts (ids, image,
    category, ``bbox``); 'none' reads and keeps only ``images`` and ``categories`` (calibration on detector
    boxes needs no ground truth).
    """
    if annotations not in ("segm", "boxes", "none"):
        raise ValueError(f"annotations must be 'segm', 'boxes' or 'none', got {annotations!r}")
    data, digest = read_json(path, what)
    where = f"{what} {path}"
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a COCO annotation object with 'images', got {type(data).__name__}")
    needed = ("images", "categories") + (("annotations",) if annotations != "none" else ())
    for key in needed:
        if not isinstance(data.get(key), list):
            raise DataError(f"{where}: '{key}' must be a list (a COCO instances file)")
    images: list[CocoImage] = []
    seen: set[int] = set()
    for i, entry in enumerate(data["images"]):
        if not (isinstance(entry, dict) and _is_int(entry.get("id")) and isinstance(entry.get("file_name"), str)
                and _is_int(entry.get("height")) and _is_int(entry.get("width"))
                and entry["height"] > 0 and entry["width"] > 0):
            raise DataError(f"{where}: images[{i}] needs an integer 'id', a 'file_name' and positive integer "
                            f"'height' and 'width', got {_one_line(repr(entry))}")
        if entry["id"] in seen:
            raise DataError(f"{where}: image id {entry['id']} appears twice in 'images'")
        seen.add(entry["id"])
        images.append(CocoImage(entry["id"], entry["file_name"], entry["height"], entry["width"]))
    categories = set()
    for i, entry in enumerate(data["categories"]):
        if not (isinstance(entry, dict) and _is_int(entry.get("id"))):
            raise DataError(f"{where}: categories[{i}] needs an integer 'id', got {_one_line(repr(entry))}")
        categories.add(entry["id"])
    if not categories:
        raise DataError(f"{where}: 'categories' is empty")
    if annotations == "none":
        data = {"images": data["images"], "categories": data["categories"]}
    else:
        _check_annotations(data, seen, categories, where, segm=annotations == "segm")
    return CocoAnnotations(path, digest, images, frozenset(categories), data)


def _check_annotations(data: dict, image_ids: set[int], category_ids: set[int], where: str, segm: bool) -> None:
    """Raise DataError on the first annotation that pycocotools' segm evaluation (``segm``) or a box prompt
    (not ``segm``) could not use; fill in ``iscrowd`` (0) and, for segm, ``area`` (of the mask) where missing."""
    by_id = {im["id"]: im for im in data["images"]}
    ann_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{where}: annotations[{i}] is not an object")
        for key in ("id", "image_id", "category_id"):
            if not _is_int(ann.get(key)):
                raise DataError(f"{where}: annotations[{i}] needs an integer '{key}', got {ann.get(key)!r}")
        if ann["id"] in ann_ids:
            raise DataError(f"{where}: annotation id {ann['id']} appears twice")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in image_ids:
            raise DataError(f"{where}: annotations[{i}] refers to image id {ann['image_id']}, which is not in 'images'")
        if ann["category_id"] not in category_ids:
            raise DataError(f"{where}: annotations[{i}] has category id {ann['category_id']}, "
                            f"which is not in 'categories'")
        ann.setdefault("iscrowd", 0)
        if not segm:
            box = ann.get("bbox")
            if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)) or min(box[2:]) < 0:
                raise DataError(f"{where}: annotations[{i}] needs 'bbox' [x, y, w, h] for ground-truth box prompts, "
                                f"got {_one_line(repr(box), 60)}")
            continue
        seg = ann.get("segmentation")
        polygons = isinstance(seg, list) and len(seg) > 0 and all(isinstance(p, list) for p in seg)
        rle = isinstance(seg, dict) and "counts" in seg and "size" in seg
        if not (polygons or rle):
            raise DataError(f"{where}: annotations[{i}] needs a 'segmentation' (a list of polygons or an RLE "
                            f"with 'counts' and 'size')")
        if "area" not in ann:
            ann["area"] = _mask_area(seg, by_id[ann["image_id"]])
        elif not _is_number(ann["area"]):
            raise DataError(f"{where}: annotations[{i}] 'area' must be a number, got {ann['area']!r}")


def _mask_area(segmentation: Any, image: dict) -> float:
    """Return the pixel area of a polygon list or RLE on ``image`` (pycocotools' rasterisation)."""
    from pycocotools import mask as mask_utils

    h, w = image["height"], image["width"]
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, h, w)
    else:
        rle = segmentation
    return float(mask_utils.area(rle))


# ----------------------------------------------------------------------------------------------------------
# box prompts


@dataclass(frozen=True)
class BoxPrompts:
    """The boxes of one image: ``boxes`` (n, 4) x, y, w, h in original pixels (float64), ``scores`` (n,)
    and ``category_ids`` (n,), in a fixed order (highest score first after :func:`filter_boxes`)."""

    boxes: np.ndarray
    scores: np.ndarray
    category_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty() -> BoxPrompts:
        """Return prompts with no box."""
        return BoxPrompts(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def take(self, index: np.ndarray) -> BoxPrompts:
        """Return the boxes at ``index``, in that order."""
        return BoxPrompts(self.boxes[index], self.scores[index], self.category_ids[index])


@dataclass
class Detections:
    """A checked detector results file: its boxes grouped by image id, in file order within an image."""

    path: str
    sha256: str
    per_image: dict[int, BoxPrompts]
    num_boxes: int

    def prompts(self, image_id: int) -> BoxPrompts:
        """Return the boxes of ``image_id`` (none if the detector found nothing there)."""
        found = self.per_image.get(image_id)
        return BoxPrompts.empty() if found is None else found


def load_detections(path: str, annotations: CocoAnnotations, what: str = "det_file") -> Detections:
    """Return the detector results at ``path`` (``[{image_id, category_id, bbox [x, y, w, h], score}, ...]``),
    checked against ``annotations``: DataError if a field is wrong, the list is empty, an image id or a
    category id is not in the annotation file."""
    items, digest = read_json(path, what)
    where = f"{what} {path}"
    if not isinstance(items, list):
        raise DataError(f"{where}: expected a COCO results list [{{image_id, category_id, bbox, score}}, ...], "
                        f"got {type(items).__name__}")
    if not items:
        raise DataError(f"{where} is an empty list: the detector gave no box at all")
    try:  # columns in one pass; any malformed entry falls back to the scan that names it
        image_ids = np.asarray([d["image_id"] for d in items])
        category_ids = np.asarray([d["category_id"] for d in items])
        boxes = np.asarray([d["bbox"] for d in items])
        scores = np.asarray([d["score"] for d in items])
        # dtype kinds, not a cast: a cast would read "0.9" or true as numbers
        well_formed = (image_ids.dtype.kind == "i" and category_ids.dtype.kind == "i" and boxes.dtype.kind in "if"
                       and scores.dtype.kind in "if" and boxes.ndim == 2 and boxes.shape[1] == 4 and scores.ndim == 1
                       and bool(np.isfinite(boxes).all()) and bool(np.isfinite(scores).all())
                       and bool((boxes[:, 2:] >= 0).all()))
    except (KeyError, TypeError, ValueError, IndexError):
        well_formed = False
    if not well_formed:
        index, problem = _first_bad_detection(items)
        raise DataError(f"{where}: entry {index} {problem}")
    known = np.asarray(sorted(im.id for im in annotations.images), dtype=np.int64)
    unknown = np.unique(image_ids[~np.isin(image_ids, known)])
    if unknown.size:
        raise DataError(f"{where}: {unknown.size} of {np.unique(image_ids).size} image ids are not in "
                        f"{annotations.path} (first: {_first(unknown.tolist())}); is it the results of another split?")
    bad_cats = np.unique(category_ids[~np.isin(category_ids, np.asarray(sorted(annotations.category_ids)))])
    if bad_cats.size:
        raise DataError(f"{where}: category ids {_first(bad_cats.tolist())} are not in the categories of "
                        f"{annotations.path}")
    order = np.argsort(image_ids, kind="stable")  # groups by image, file order within each
    ids_sorted = image_ids[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    per_image: dict[int, BoxPrompts] = {}
    for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
        idx = order[start:stop]
        per_image[int(ids_sorted[start])] = BoxPrompts(boxes[idx].astype(np.float64), scores[idx].astype(np.float64),
                                                       category_ids[idx].astype(np.int64))
    return Detections(path, digest, per_image, len(items))


def _first_bad_detection(items: list) -> tuple[int, str]:
    """Return (index, what is wrong) of the first entry that is not a COCO detection result."""
    for i, d in enumerate(items):
        if not isinstance(d, dict):
            return i, f"is not an object ({_one_line(repr(d), 60)})"
        for key in ("image_id", "category_id"):
            if not _is_int(d.get(key)):
                return i, f"needs an integer '{key}', got {_one_line(repr(d.get(key)), 60)}"
        box = d.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            return i, f"needs 'bbox' [x, y, w, h] of 4 finite numbers, got {_one_line(repr(box), 60)}"
        if box[2] < 0 or box[3] < 0:
            return i, f"has a negative box width or height: {box}"
        if not _is_number(d.get("score")):
            return i, f"needs a finite number 'score', got {_one_line(repr(d.get('score')), 60)}"
    return 0, "is malformed"  # pragma: no cover - the vectorised check and this scan agree


def gt_prompts(annotations: CocoAnnotations) -> Detections:
    """Return the ground-truth boxes of ``annotations`` (loaded with 'boxes' or 'segm'; crowd regions excluded)
    as prompts with score 1 in file order, for calibration where the calibration split has no detector output."""
    per: dict[int, list[tuple[list[float], int]]] = {}
    for ann in annotations.dataset["annotations"]:
        if not ann.get("iscrowd"):
            per.setdefault(ann["image_id"], []).append((ann["bbox"], ann["category_id"]))
    out = {image_id: BoxPrompts(np.asarray([b for b, _ in rows], dtype=np.float64).reshape(-1, 4),
                                np.ones(len(rows)), np.asarray([c for _, c in rows], dtype=np.int64))
           for image_id, rows in per.items()}
    return Detections(annotations.path, annotations.sha256, out, sum(len(p) for p in out.values()))


def filter_boxes(prompts: BoxPrompts, score_thr: float, max_per_image: int | None) -> BoxPrompts:
    """Return the boxes with score ≥ ``score_thr``, highest score first (ties in file order), at most
    ``max_per_image`` of them (None: no cap). The detector's own NMS is already in its file; an image left
    without boxes stays without (no dummy box)."""
    keep = np.flatnonzero(prompts.scores >= score_thr)
    keep = keep[np.argsort(-prompts.scores[keep], kind="stable")]
    if max_per_image is not None:
        keep = keep[:max_per_image]
    return prompts.take(keep)


def select_calibration(images: Sequence[CocoImage], prompts: Mapping[int, BoxPrompts], num_samples: int,
                       order: str, seed: int) -> tuple[list[tuple[CocoImage, BoxPrompts]], int]:
    """Return (the ``num_samples`` calibration images with their boxes, how many images without a box were
    passed over to find them).

    'first': the first images of the annotation file, in file order, that have a box (PTQ4SAM's choice);
    'random': a permutation seeded by ``seed`` over the images sorted by file name (so the choice does not
    depend on the file's order), walked until ``num_samples`` images with a box are found, then sorted by file
    name. An image without a box is never a calibration sample. ValueError if too few images have a box.
    """
    if order == "first":
        walk = list(images)
    elif order == "random":
        by_name = sorted(images, key=lambda im: (im.file_name, im.id))
        perm = torch.randperm(len(by_name), generator=torch.Generator().manual_seed(int(seed))).tolist()
        walk = [by_name[i] for i in perm]
    else:
        raise ValueError(f"order must be 'first' or 'random', got {order!r}")
    chosen: list[tuple[CocoImage, BoxPrompts]] = []
    skipped = 0
    for im in walk:
        if len(chosen) == num_samples:
            break
        p = prompts.get(im.id)
        if p is None or len(p) == 0:
            skipped += 1
        else:
            chosen.append((im, p))
    if len(chosen) < num_samples:
        raise ValueError(f"only {len(chosen)} of {len(walk)} images have a box, {num_samples} requested")
    if order == "random":
        chosen.sort(key=lambda pair: (pair[0].file_name, pair[0].id))
    return chosen, skipped


def calibration_hash(chosen: Sequence[tuple[CocoImage, BoxPrompts]]) -> str:
    """Return the sha256 of the chosen images' file names and their boxes (x, y, w, h, exact float reprs), so
    that another sample or another detector file gives another hash."""
    lines = [im.file_name + " " + " ".join(repr(float(v)) for v in p.boxes.ravel()) for im, p in chosen]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------------------
# images


def image_path(root: str, image: CocoImage) -> str:
    """Return the path of ``image`` under ``root``."""
    return os.path.join(root, image.file_name)


def check_images(root: str, images: Sequence[CocoImage], ann_path: str, what: str, read_sizes: bool = True) -> None:
    """Raise DataError if an image of ``images`` is missing under ``root`` or (``read_sizes``: from the file's
    header, without decoding it) has another size than its annotation says."""
    if not root or not os.path.isdir(root):
        raise DataError(f"{what}.root is not a folder: {root!r} (images of {ann_path})")
    missing = [im.file_name for im in images if not os.path.isfile(image_path(root, im))]
    if missing:
        raise DataError(f"{len(missing)} of {len(images)} images of {ann_path} are missing under {root} "
                        f"(first: {_first(missing, 3)})")
    if read_sizes:
        for im in images:
            path = image_path(root, im)
            try:
                with Image.open(path) as img:
                    size = img.size
            except OSError as exc:
                raise DataError(f"cannot read image {path}: {_one_line(str(exc))}") from None
            _check_size(path, size, im, ann_path)


def _check_size(path: str, size: tuple[int, int], image: CocoImage, ann_path: str) -> None:
    if size != (image.width, image.height):
        raise DataError(f"image {path} is {size[0]}x{size[1]} but {ann_path} says "
                        f"{image.width}x{image.height} (width x height)")


def load_image(root: str, image: CocoImage, ann_path: str) -> Image.Image:
    """Return the RGB image of ``image``; DataError if it cannot be decoded or has another size than annotated
    (its masks would not line up with the ground truth)."""
    path = image_path(root, image)
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except OSError as exc:
        raise DataError(f"cannot decode image {path}: {_one_line(str(exc))}") from None
    _check_size(path, rgb.size, image, ann_path)
    return rgb


# ----------------------------------------------------------------------------------------------------------
# SAM transforms


def resized_shape(height: int, width: int, longest_side: int) -> tuple[int, int]:
    """Return (h, w) of an image resized so that its longest side is ``longest_side`` (segment-anything's
    ``ResizeLongestSide.get_preprocess_shape`` rounding)."""
    from segment_anything.utils.transforms import ResizeLongestSide

    return ResizeLongestSide.get_preprocess_shape(height, width, longest_side)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Return (n, 4) boxes x0, y0, x1, y1 from COCO's x, y, w, h (float64)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


@dataclass(frozen=True)
class SamTransform:
    """SAM's test-time transforms: the image resized (longest side ``longest_side``), normalised and zero-padded
    to ``pad_to``×``pad_to``; boxes scaled into that frame; mask logits brought back to the original size."""

    longest_side: int
    pad_to: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    mask_threshold: float = 0.0

    KEYS = ("longest_side", "pad_to", "mean", "std", "interpolation", "mask_threshold")

    @classmethod
    def from_preprocess(cls, preprocess: Mapping[str, Any]) -> SamTransform:
        """Return the transform of a model's preprocessing dict (``sam_preprocess``); ConfigError if it is not
        SAM's (a classification resize/crop) or a value is invalid."""
        foreign = sorted(k for k in ("resize", "crop") if preprocess.get(k) is not None)
        if foreign:
            raise ConfigError(f"data.preprocess.{foreign[0]} does not apply to box-prompted SAM, which resizes the "
                              f"longest side to the model's image size; remove it")
        missing = [k for k in ("longest_side", "pad_to", "mean", "std") if preprocess.get(k) is None]
        if missing:
            raise ConfigError(f"the model's preprocessing lacks {missing}: coco_instance needs a SAM model "
                              f"(model.type='sam')")
        side, pad = preprocess["longest_side"], preprocess["pad_to"]
        if not (_is_int(side) and _is_int(pad) and 0 < side <= pad):
            raise ConfigError(f"preprocess longest_side {side!r} and pad_to {pad!r} must be integers with "
                              f"0 < longest_side <= pad_to")
        for key in ("mean", "std"):
            value = preprocess[key]
            if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value)):
                raise ConfigError(f"preprocess.{key} must be 3 numbers on the 0..1 scale, got {value!r}")
        if any(s <= 0 for s in preprocess["std"]):
            raise ConfigError(f"preprocess.std must be positive, got {preprocess['std']!r}")
        interp = preprocess.get("interpolation") or "bilinear"
        if interp not in _RESAMPLE:
            raise ConfigError(f"preprocess.interpolation must be one of {sorted(_RESAMPLE)}, got {interp!r}")
        thr = preprocess.get("mask_threshold", 0.0)
        if not _is_number(thr):
            raise ConfigError(f"preprocess mask_threshold must be a number, got {thr!r}")
        return cls(side, pad, tuple(float(v) for v in preprocess["mean"]), tuple(float(v) for v in preprocess["std"]),
                   interp, float(thr))

    def describe(self) -> dict:
        """Return the transform's settings (for results.json)."""
        return {k: getattr(self, k) for k in self.KEYS}

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Return (h, w) of an original H×W image inside the model's frame (before padding)."""
        return resized_shape(height, width, self.longest_side)

    def image(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """Return (the model input (1, 3, pad_to, pad_to) float32, its unpadded (h, w)) of an RGB PIL image.

        The resize is PIL's, as segment-anything's ``ResizeLongestSide.apply_image`` does it (through
        torchvision's resize of a PIL image); the normalisation is SAM's ``(x - mean) / std`` on the 0..1 scale.
        """
        h, w = self.input_size(image.height, image.width)
        resized = image.convert("RGB").resize((w, h), _RESAMPLE[self.interpolation])
        x = torch.from_numpy(np.array(resized, dtype=np.float32)).permute(2, 0, 1).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        out = torch.zeros(1, 3, self.pad_to, self.pad_to)
        out[0, :, :h, :w] = (x - mean) / std  # padding after normalisation: zeros, as Sam.preprocess
        return out, (h, w)

    def boxes(self, boxes_xywh: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Return (n, 4) float64 boxes x0, y0, x1, y1 in the model's frame from COCO boxes on an original
        image of ``original_size`` (H, W), scaled exactly as ``ResizeLongestSide.apply_boxes``."""
        old_h, old_w = original_size
        new_h, new_w = self.input_size(old_h, old_w)
        xyxy = xywh_to_xyxy(boxes_xywh)
        xyxy[:, 0::2] *= new_w / old_w
        xyxy[:, 1::2] *= new_h / old_h
        return xyxy

    def mask_logits(self, logits: torch.Tensor, input_size: tuple[int, int],
                    original_size: tuple[int, int]) -> torch.Tensor:
        """Return low-resolution mask logits (P, 1, h, w) upsampled to the original (P, 1, H, W), as
        ``Sam.postprocess_masks``: bilinear to pad_to×pad_to, crop the padding, bilinear to H×W
        (align_corners=False)."""
        x = F.interpolate(logits.float(), (self.pad_to, self.pad_to), mode="bilinear", align_corners=False)
        x = x[..., : input_size[0], : input_size[1]]
        return F.interpolate(x, tuple(original_size), mode="bilinear", align_corners=False)

    def masks(self, logits: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]) -> torch.Tensor:
        """Return the binary masks (P, H, W) bool of low-resolution logits (P, 1, h, w): logit > mask_threshold."""
        return self.mask_logits(logits, input_size, original_size)[:, 0] > self.mask_threshold
