"""Generated scenes of textured shapes on textured backgrounds, for the SAM demo and segmentation tests.

A scene is an RGB uint8 image with 1–6 objects of six shape kinds (each a COCO category with a stable id,
see :data:`CATEGORIES`), each with its own colour and texture, placed at a random size, rotation and
position; later objects occlude earlier ones, so an instance's mask is its visible part and no two masks
overlap. An object is only placed if every instance keeps enough of itself visible, so every painted pixel
belongs to exactly one annotated instance (or to the background), and the semantic label map
(:func:`semantic_label_map`) agrees with the instance masks.

Everything is drawn from a ``numpy.random.Generator``: scene ``index`` of a split with ``seed`` comes from
``np.random.default_rng([seed, index])`` (:func:`split_scene`), so any scene can be rebuilt on its own.

- :func:`make_scene` — one scene (image, instances with mask / bbox / category);
- :func:`write_coco_split` — a folder of images and ``instances_<split>.json`` (RLE masks);
- :func:`simulate_detections` — a detector's COCO results list from a ground-truth file (jittered boxes,
  noisy scores, misses, false positives); :func:`match_detections` tells which of them hit a GT box;
- :func:`semantic_label_map` — class index per pixel (background 0, shape kind k -> k).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

SHAPE_KINDS: tuple[str, ...] = ("disc", "ellipse", "rectangle", "triangle", "star", "ring")
# Category id = 1 + position in SHAPE_KINDS: stable, so files written today stay valid.
CATEGORIES: tuple[dict[str, Any], ...] = tuple(
    {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_KINDS))
BACKGROUND_INDEX = 0
IGNORE_INDEX = 255  # reserved for "ignore" in semantic maps; never written by the generator
# (height, width) of the demo's images: square and both non-square orientations, longest side 256.
MIXED_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (192, 256), (256, 192))

Grid = tuple[np.ndarray, np.ndarray]  # (y, x) pixel-centre coordinates, same shape


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. ``sizes``: (height, width) choices, one picked per scene."""

    sizes: tuple[tuple[int, int], ...] = ((256, 256),)
    min_objects: int = 1
    max_objects: int = 6
    min_radius: float = 0.10  # object radius, as a fraction of the image's shorter side
    max_radius: float = 0.30
    min_visible_area: int = 120  # pixels an instance must keep visible
    min_visible_fraction: float = 0.35  # of its own unoccluded in-frame area
    placement_tries: int = 25
    pixel_noise: float = 0.015  # std of the final per-pixel noise, on the 0..1 scale

    def __post_init__(self) -> None:
        if not self.sizes or any(h < 16 or w < 16 for h, w in self.sizes):
            raise ValueError(f"sizes must be (height, width) pairs of at least 16 pixels, got {self.sizes}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not 0 < self.min_radius <= self.max_radius:
            raise ValueError(f"need 0 < min_radius <= max_radius, got {self.min_radius}, {self.max_radius}")


@dataclass(frozen=True)
class ShapeInstance:
    """One visible object: its category id and boolean mask (H, W) of the pixels it shows."""

    category_id: int
    mask: np.ndarray = field(repr=False)

    @property
    def area(self) -> int:
        """Return the number of visible pixels."""
        return int(self.mask.sum())

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Return the mask's box (x, y, w, h) in pycocotools' convention (w = last column - first + 1)."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        return (float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1))


@dataclass(frozen=True)
class Scene:
    """An RGB uint8 image (H, W, 3) and its instances, earliest drawn first."""

    image: np.ndarray = field(repr=False)
    instances: tuple[ShapeInstance, ...]

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


# --------------------------------------------------------------------------------------------- textures
def _grid(h: int, w: int) -> Grid:
    """Return pixel-centre coordinates (y, x), each (h, w) float32."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y, x


def _along(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return the coordinate along a random direction (pixels)."""
    angle = rng.uniform(0, np.pi)
    return grid[1] * np.cos(angle) + grid[0] * np.sin(angle)


def _normalise(t: np.ndarray) -> np.ndarray:
    """Return ``t`` rescaled to 0..1 (a constant field becomes 0.5)."""
    lo, hi = float(t.min()), float(t.max())
    return np.full_like(t, 0.5) if hi - lo < 1e-6 else (t - lo) / (hi - lo)


def _gradient(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return a linear or radial ramp, 0..1."""
    if rng.random() < 0.7:
        return _normalise(_along(rng, grid))
    y, x = grid
    cy = rng.uniform(y.min(), y.max() + 1)
    cx = rng.uniform(x.min(), x.max() + 1)
    return _normalise(np.hypot(y - cy, x - cx))


def _stripes(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return stripes at a random angle and period, soft (sine) or hard, 0..1."""
    period = rng.uniform(5, 32)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * _along(rng, grid) / period + rng.uniform(0, 2 * np.pi))
    return (t > 0.5).astype(np.float32) if rng.random() < 0.5 else t


def _checker(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return a checkerboard with a random cell size and rotation, 0 or 1."""
    cell = rng.uniform(6, 32)
    angle = rng.uniform(0, np.pi / 2)
    y, x = grid
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    return ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)


def _blurred_noise(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return white noise low-pass filtered by a Gaussian of random width (FFT, periodic), 0..1."""
    h, w = grid[0].shape
    sigma = rng.uniform(1.5, 10.0)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    transfer = np.exp(-2 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
    return _normalise(np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(h, w)).astype(np.float32))


_PATTERNS: tuple[Callable[[np.random.Generator, Grid], np.ndarray], ...] = (
    _gradient, _stripes, _checker, _blurred_noise)


def _pattern(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return one pattern field 0..1: a single family, or (one time in five) two blended by a noise field."""
    if rng.random() < 0.2:
        a, b = rng.choice(len(_PATTERNS), size=2, replace=False)
        alpha = _blurred_noise(rng, grid)
        return alpha * _PATTERNS[a](rng, grid) + (1 - alpha) * _PATTERNS[b](rng, grid)
    return _PATTERNS[rng.integers(len(_PATTERNS))](rng, grid)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """Return a random RGB colour (3,) float32 on the 0..1 scale."""
    return rng.uniform(0, 1, 3).astype(np.float32)


def _paint(pattern: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Return the RGB field (..., 3) that maps pattern 0..1 linearly from colour c0 to c1."""
    return c0 + (c1 - c0) * pattern[..., None]


def _background(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Return a background (H, W, 3) 0..1: a pattern between two independent colours."""
    return _paint(_pattern(rng, grid), _colour(rng), _colour(rng))


def _object_colours(rng: np.random.Generator, avoid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return an object's two colours: a base colour away from ``avoid`` (the background under it) and a
    second one near the base, so that an object reads as one region with a texture on it."""
    base = _colour(rng)
    for _ in range(8):  # a few redraws keep most objects distinguishable from what surrounds them
        if np.abs(base - avoid).sum() > 0.45:
            break
        base = _colour(rng)
    other = np.clip(base + rng.uniform(-0.3, 0.3, 3).astype(np.float32), 0, 1)
    return base, other


# ----------------------------------------------------------------------------------------------- shapes
def _shape_mask(kind: str, rng: np.random.Generator, grid: Grid, cy: float, cx: float, r: float) -> np.ndarray:
    """Return the boolean mask of a shape of ``kind`` centred at (cy, cx), radius about ``r``, random rotation."""
    theta = rng.uniform(0, 2 * np.pi)
    dy, dx = grid[0] - cy, grid[1] - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    rho2 = u * u + v * v
    if kind == "disc":
        return rho2 <= r * r
    if kind == "ellipse":
        b = r * rng.uniform(0.35, 0.7)
        return (u / r) ** 2 + (v / b) ** 2 <= 1
    if kind == "rectangle":
        a, b = r * rng.uniform(0.65, 0.95), r * rng.uniform(0.3, 0.95)
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    if kind == "triangle":
        angles = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.normal(0, 12, 3))
        radii = r * rng.uniform(0.85, 1.15, 3)
        px, py = radii * np.cos(angles), radii * np.sin(angles)  # counter-clockwise vertices
        inside = np.ones(u.shape, dtype=bool)
        for i in range(3):  # three half-planes, each vectorised over all pixels
            j = (i + 1) % 3
            inside &= (px[j] - px[i]) * (v - py[i]) - (py[j] - py[i]) * (u - px[i]) >= 0
        return inside
    if kind == "star":
        points = int(rng.integers(5, 8))
        inner = r * rng.uniform(0.4, 0.6)
        sector = (np.arctan2(v, u) % (2 * np.pi / points)) * (points / (2 * np.pi))  # 0..1 within a point
        reach = inner + (r - inner) * np.abs(2 * sector - 1)  # r at the tips, ``inner`` between them
        return rho2 <= reach * reach
    if kind == "ring":
        inner = r * rng.uniform(0.45, 0.7)
        return (rho2 <= r * r) & (rho2 >= inner * inner)
    raise ValueError(f"unknown shape kind {kind!r}; choose one of {SHAPE_KINDS}")


def _shape_window(h: int, w: int, cy: float, cx: float, r: float) -> tuple[slice, slice] | None:
    """Return the (rows, cols) slices that can hold a shape of radius ``r`` at (cy, cx) (every kind stays
    within 1.15 r of its centre), or None when that lies outside the image."""
    reach = 1.2 * r + 2
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, h)
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, w)
    return (slice(y0, y1), slice(x0, x1)) if y1 > y0 and x1 > x0 else None


def make_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    """Return one scene drawn from ``rng``: image (H, W, 3) uint8 and its visible instances."""
    h, w = config.sizes[int(rng.integers(len(config.sizes)))]
    grid = _grid(h, w)
    canvas = _background(rng, grid)
    owner = np.full((h, w), -1, dtype=np.int16)  # index of the instance that shows at each pixel
    full_areas: list[int] = []
    visible = np.zeros(0, dtype=np.int64)  # visible pixels of each placed instance
    kinds: list[int] = []
    short = min(h, w)
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        for _ in range(config.placement_tries):
            kind = int(rng.integers(len(SHAPE_KINDS)))
            r = short * rng.uniform(config.min_radius, config.max_radius)
            cy, cx = rng.uniform(0.05, 0.95) * h, rng.uniform(0.05, 0.95) * w
            window = _shape_window(h, w, cy, cx, r)
            if window is None:
                continue
            # Shapes are evaluated on their window only: most of the image is far from any one object.
            sub_grid = (grid[0][window], grid[1][window])
            local = _shape_mask(SHAPE_KINDS[kind], rng, sub_grid, cy, cx, r)
            area = int(local.sum())
            if area < max(config.min_visible_area, 1):
                continue
            covered = owner[window][local]
            after = visible - np.bincount(covered[covered >= 0], minlength=len(visible))
            needed = np.maximum(config.min_visible_area,
                                config.min_visible_fraction * np.array(full_areas, dtype=np.float64))
            if np.all(after >= needed):
                break
        else:
            continue  # no placement keeps every instance visible enough: this object is left out
        base, other = _object_colours(rng, canvas[window][local].mean(axis=0))
        texture = _paint(_pattern(rng, sub_grid), base, other)
        canvas[window][local] = texture[local]
        owner[window][local] = len(full_areas)
        visible = np.append(after, area)
        full_areas.append(area)
        kinds.append(kind)
    canvas += config.pixel_noise * rng.standard_normal(canvas.shape, dtype=np.float32)
    image = np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)
    instances = tuple(ShapeInstance(category_id=kind + 1, mask=owner == i) for i, kind in enumerate(kinds))
    return Scene(image=image, instances=instances)


def split_scene(seed: int, index: int, config: SceneConfig = SceneConfig()) -> Scene:
    """Return scene ``index`` of the split generated with ``seed`` (its own stream, rebuildable alone)."""
    return make_scene(np.random.default_rng([int(seed), int(index)]), config)


def semantic_label_map(scene: Scene) -> np.ndarray:
    """Return the class index per pixel (H, W) uint8: background 0, shape kind k (category id) -> k."""
    labels = np.full(scene.image.shape[:2], BACKGROUND_INDEX, dtype=np.uint8)
    for inst in scene.instances:  # masks never overlap, so the order does not matter
        labels[inst.mask] = inst.category_id
    return labels


# ------------------------------------------------------------------------------------------------- COCO
def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Return the COCO RLE of a boolean mask with ``counts`` as a str (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def scene_annotations(scene: Scene, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """Return the COCO annotations of a scene's instances, ids from ``first_id``."""
    return [{"id": first_id + k, "image_id": image_id, "category_id": inst.category_id,
             "segmentation": encode_mask(inst.mask), "area": float(inst.area), "bbox": list(inst.bbox),
             "iscrowd": 0} for k, inst in enumerate(scene.instances)]


def write_coco_split(root: str | Path, split: str, num_images: int, seed: int,
                     config: SceneConfig = SceneConfig(), image_format: str = "jpg",
                     jpeg_quality: int = 90) -> Path:
    """Write ``num_images`` scenes to ``root/<split>/<id:06d>.<image_format>`` and their annotations to
    ``root/instances_<split>.json``; return the annotation file's path.

    Image ids run 1..num_images and scene ``i`` is ``split_scene(seed, i - 1, config)``.
    """
    from PIL import Image

    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    root = Path(root)
    image_dir = root / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id in range(1, num_images + 1):
        scene = split_scene(seed, image_id - 1, config)
        file_name = f"{image_id:06d}.{image_format}"
        if image_format == "jpg":  # 4:4:4 keeps thin stripes and small shapes' colours intact
            Image.fromarray(scene.image).save(image_dir / file_name, quality=jpeg_quality, subsampling=0)
        else:
            Image.fromarray(scene.image).save(image_dir / file_name, optimize=True)
        images.append({"id": image_id, "file_name": file_name, "height": scene.height, "width": scene.width})
        annotations += scene_annotations(scene, image_id, len(annotations) + 1)
    coco = {"info": {"description": f"ptqvision generated shapes, split {split!r}, seed {seed}"},
            "images": images, "annotations": annotations, "categories": [dict(c) for c in CATEGORIES]}
    path = root / f"instances_{split}.json"
    path.write_text(json.dumps(coco, separators=(",", ":")))
    return path


# --------------------------------------------------------------------------------------------- detector
@dataclass(frozen=True)
class DetectorConfig:
    """How the simulated detector errs. Jitters are standard deviations relative to the box's size; one box
    in ``heavy_rate`` gets ``heavy_factor`` times the jitter (a badly localised detection)."""

    position_jitter: float = 0.05
    scale_jitter: float = 0.07  # of log(width) and log(height), independently
    heavy_rate: float = 0.12
    heavy_factor: float = 3.0
    miss_rate: float = 0.04
    wrong_category_rate: float = 0.04
    false_positives_per_image: float = 0.8  # Poisson mean
    false_positive_scores: tuple[float, float] = (0.05, 0.55)
    score_noise: float = 0.06


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU matrix (N, M) of boxes ``a`` (N, 4) and ``b`` (M, 4), both x, y, w, h."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - inter
    return inter / np.maximum(union, 1e-9)


def jitter_boxes(rng: np.random.Generator, boxes: np.ndarray, width: int, height: int,
                 position: float, scale: float) -> np.ndarray:
    """Return ``boxes`` (N, 4, x y w h) with centres shifted and sides rescaled at random, clipped to the image
    and at least one pixel wide and high."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = boxes[:, 2:]
    centre = boxes[:, :2] + size / 2 + rng.normal(0, 1, size.shape) * position * size
    new_size = size * np.exp(rng.normal(0, 1, size.shape) * scale)
    lo = np.clip(centre - new_size / 2, 0, [width - 1, height - 1])
    hi = np.clip(centre + new_size / 2, 0, [width, height])
    hi = np.maximum(hi, lo + 1)
    return np.concatenate([lo, hi - lo], axis=1)


def simulate_detections(gt: Mapping[str, Any], seed: int,
                        config: DetectorConfig = DetectorConfig()) -> list[dict[str, Any]]:
    """Return a detector's COCO results (``image_id``, ``category_id``, ``bbox`` x y w h, ``score``) for the
    ground truth ``gt`` (a loaded instances file).

    Each GT box is missed with ``miss_rate``; otherwise it is jittered, scored high for small jitter and lower
    for large (IoU with its GT box, plus noise) and labelled with a wrong category with
    ``wrong_category_rate``. Each image also gets Poisson(``false_positives_per_image``) false positives:
    random boxes, or GT-sized boxes moved onto background, with low-to-mid scores and random categories.
    """
    rng = np.random.default_rng([int(seed), 7])
    category_ids = np.array(sorted(c["id"] for c in gt["categories"]))
    by_image: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in gt["images"]}
    for ann in gt["annotations"]:
        by_image[ann["image_id"]].append(ann)
    results: list[dict[str, Any]] = []

    def emit(image_id: int, category_id: int, box: np.ndarray, score: float) -> None:
        results.append({"image_id": int(image_id), "category_id": int(category_id),
                        "bbox": [round(float(v), 2) for v in box], "score": round(float(score), 4)})

    for img in gt["images"]:
        width, height = int(img["width"]), int(img["height"])
        anns = by_image[img["id"]]
        gt_boxes = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        for ann, box in zip(anns, gt_boxes):
            if rng.random() < config.miss_rate:
                continue
            factor = config.heavy_factor if rng.random() < config.heavy_rate else 1.0
            det = jitter_boxes(rng, box, width, height, config.position_jitter * factor,
                               config.scale_jitter * factor)[0]
            iou = box_iou(det, box)[0, 0]
            score = np.clip(0.85 + 0.8 * (iou - 0.85) + rng.normal(0, config.score_noise), 0.3, 0.99)
            category = ann["category_id"]
            if rng.random() < config.wrong_category_rate:
                category = rng.choice(category_ids[category_ids != category])
            emit(img["id"], category, det, score)
        for _ in range(int(rng.poisson(config.false_positives_per_image))):
            side = min(width, height)
            if len(anns) and rng.random() < 0.5:  # a GT-sized box moved to where no GT box is
                w, h = gt_boxes[rng.integers(len(anns)), 2:]
            else:
                w, h = side * rng.uniform(0.1, 0.5), side * rng.uniform(0.1, 0.5)
            w, h = min(w, width - 1.0), min(h, height - 1.0)
            for _ in range(10):
                box = np.array([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h])
                if not len(anns) or box_iou(box, gt_boxes).max() < 0.2:
                    break
            emit(img["id"], rng.choice(category_ids), box, rng.uniform(*config.false_positive_scores))
    return results


def write_detections(gt_path: str | Path, out_path: str | Path, seed: int,
                     config: DetectorConfig = DetectorConfig()) -> Path:
    """Write :func:`simulate_detections` of the instances file ``gt_path`` to ``out_path``; return it."""
    gt = json.loads(Path(gt_path).read_text())
    out_path = Path(out_path)
    out_path.write_text(json.dumps(simulate_detections(gt, seed, config), separators=(",", ":")))
    return out_path


def match_detections(gt: Mapping[str, Any], detections: Sequence[Mapping[str, Any]],
                     iou_threshold: float = 0.5) -> np.ndarray:
    """Return, per detection, whether it has IoU >= ``iou_threshold`` with a GT box of its image and category
    (a true positive in the loose sense; duplicates are not suppressed)."""
    boxes: dict[tuple[int, int], list[list[float]]] = {}
    for ann in gt["annotations"]:
        boxes.setdefault((ann["image_id"], ann["category_id"]), []).append(ann["bbox"])
    hits = np.zeros(len(detections), dtype=bool)
    for i, det in enumerate(detections):
        candidates = boxes.get((det["image_id"], det["category_id"]))
        hits[i] = bool(candidates) and box_iou(det["bbox"], candidates).max() >= iou_threshold
    return hits
