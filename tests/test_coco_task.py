"""The COCO instance-segmentation task with detector box prompts: readers and their one-line errors, SAM's box
and mask transforms against segment-anything, the evaluator against pycocotools on a hand-made ground truth,
the score rule, calibration, the config schema, and the model loop of a real tiny SAM."""
from __future__ import annotations

import copy
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ptqvision  # noqa: F401  (before torchvision / segment_anything)
from ptqvision.config import load_config
from ptqvision.data.coco import (
    BoxPrompts,
    CocoImage,
    SamTransform,
    calibration_hash,
    filter_boxes,
    select_calibration,
)
from ptqvision.errors import ConfigError, DataError
from ptqvision.eval.coco import SEGM_METRICS, CocoInstanceEvaluator
from ptqvision.models import build_model
from ptqvision.models.sam import SamArch, sam_preprocess
from ptqvision.tasks import build_task
from ptqvision.tasks.instance_segmentation import CocoInstanceTask

from pycocotools import mask as mask_utils  # noqa: E402  (after ptqvision)
from segment_anything.modeling import Sam  # noqa: E402
from segment_anything.utils.transforms import ResizeLongestSide  # noqa: E402

# pycocotools' mask.decode under numpy 2 (its own code, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

S = 160  # the fake model's frame: the val images' longest side, so that SAM's resize is the identity


# ----------------------------------------------------------------------------------------------------------
# a hand-made COCO tree


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def make_coco(tmp_path) -> SimpleNamespace:
    """Write images, a val and a calibration annotation file and detector results; return their paths and the
    ground-truth masks (as pycocotools decodes them) keyed by image id and box."""
    root = tmp_path / "images"
    root.mkdir()
    sizes = {"a.png": (120, 160), "b.png": (160, 96), "c.png": (64, 64), "d.png": (50, 80)}  # (H, W)
    rng = np.random.default_rng(0)
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    ids = {"a.png": 1, "b.png": 2, "c.png": 3, "d.png": 4}

    def entry(name):
        return {"id": ids[name], "file_name": name, "height": sizes[name][0], "width": sizes[name][1]}

    categories = [{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}, {"id": 7, "name": "unused"}]
    # areas: large (> 96²), medium, small (< 32²), so that every COCOeval size range has ground truth
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": _rect(2, 2, 112, 100), "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 1, "segmentation": _rect(115, 60, 155, 100), "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 2, "segmentation": _rle(_disc(120, 160, 25, 135, 5)), "iscrowd": 0},
        {"id": 13, "image_id": 2, "category_id": 2, "segmentation": _rle(_disc(160, 96, 110, 48, 20)), "iscrowd": 0},
        {"id": 14, "image_id": 2, "category_id": 1, "segmentation": _rect(5, 5, 90, 60)},  # no iscrowd, no area
        {"id": 15, "image_id": 4, "category_id": 1, "segmentation": _rect(10, 10, 30, 40), "iscrowd": 0},
    ]
    masks: dict[int, list[np.ndarray]] = {}
    for ann in anns:
        h, w = sizes[[n for n, i in ids.items() if i == ann["image_id"]][0]]
        seg = ann["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
        m = mask_utils.decode(rle)
        if ann["id"] != 14:
            ann["area"] = float(m.sum())
        ann["bbox"] = [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(m)))]
        masks.setdefault(ann["image_id"], []).append(m.astype(bool))
    val_anns = [a for a in anns if a["image_id"] in (1, 2)]
    val = {"images": [entry("a.png"), entry("b.png"), entry("c.png")], "annotations": val_anns,
           "categories": categories}
    calib = {"images": [entry("d.png"), entry("c.png"), entry("a.png"), entry("b.png")],
             "annotations": [a for a in anns if a["image_id"] in (1, 2, 4)], "categories": categories}
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": s}
            for a, s in zip(val_anns, scores)]  # c.png: no box at all
    calib_dets = [dict(d) for d in dets] + [{"image_id": 3, "category_id": 1, "bbox": [4.0, 6.0, 20.0, 30.0],
                                             "score": 0.4}]  # d.png: no box
    paths = {}
    for name, obj in (("val.json", val), ("calib.json", calib), ("dets.json", dets), ("calib_dets.json", calib_dets)):
        (tmp_path / name).write_text(json.dumps(obj))
        paths[name] = str(tmp_path / name)
    return SimpleNamespace(root=str(root), val=paths["val.json"], calib=paths["calib.json"], dets=paths["dets.json"],
                           calib_dets=paths["calib_dets.json"], anns=anns, dets_list=dets, masks=masks, tmp=tmp_path)


def write_config(coco: SimpleNamespace, task: dict | None = None, val: dict | None = None,
                 calib: dict | None = None, num_samples: int = 2) -> str:
    """Return the path of a config file for coco_instance on the hand-made tree."""
    val_section = {"root": coco.root, "ann_file": coco.val, "det_file": coco.dets, **(val or {})}
    calib_section = {"root": coco.root, "ann_file": coco.calib, "det_file": coco.calib_dets, **(calib or {})}
    text = (f"model = dict(type='sam', name='sam_tiny', weights='random')\n"
            f"task = dict(type='coco_instance', **{task or {}!r})\n"
            f"data = dict(val={val_section!r}, calib={calib_section!r})\n"
            f"calib = dict(num_samples={num_samples}, seed=3)\n"
            f"method = dict(type='rtn')\n"
            f"quant = dict(w_bits=4, a_bits=4)\n")
    path = coco.tmp / f"cfg_{abs(hash(text))}.py"
    path.write_text(text)
    return str(path)


def preprocess(side: int = S) -> dict:
    return sam_preprocess(SamArch(image_size=side))


def build(coco: SimpleNamespace, side: int = S, **kwargs) -> CocoInstanceTask:
    cfg, _ = load_config(write_config(coco, **kwargs))
    return build_task(cfg, preprocess(side))


class MaskTable(nn.Module):
    """A fake box-prompted SAM: the mask of a box is looked up by the box (in the model's frame), drawn as ±10
    logits at full S×S resolution (so that SAM's post-processing, an identity here, gives it back exactly),
    optionally shifted right by ``shift`` pixels; the predicted IoU is ``iou(box)``."""

    def __init__(self, table: dict[tuple, np.ndarray], shift: int = 0, iou=lambda box: 0.5) -> None:
        super().__init__()
        self.table, self.shift, self.iou = table, shift, iou
        self.encoded = 0
        self.decoded: list[int] = []

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        assert not self.training and not torch.is_grad_enabled()
        assert image.shape == (1, 3, S, S)
        self.encoded += 1
        return image

    def decode(self, embedding: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.decoded.append(boxes.shape[0])
        logits = torch.full((boxes.shape[0], 1, S, S), -10.0)
        for i, box in enumerate(boxes.tolist()):
            m = torch.from_numpy(np.roll(self.table[_key(box)], self.shift, axis=1))
            logits[i, 0, : m.shape[0], : m.shape[1]][m] = 10.0
        return logits, torch.tensor([[self.iou(tuple(b))] for b in boxes.tolist()])


def _key(box) -> tuple:
    return tuple(round(float(v), 3) for v in box)


def mask_table(coco: SimpleNamespace) -> dict[tuple, np.ndarray]:
    """Return {box x0 y0 x1 y1 (the val images are at scale 1 in the S frame): ground-truth mask}."""
    table = {}
    for ann in coco.anns:
        x, y, w, h = ann["bbox"]
        k = [a["id"] for a in coco.anns if a["image_id"] == ann["image_id"]].index(ann["id"])
        table[_key((x, y, x + w, y + h))] = coco.masks[ann["image_id"]][k]
    return table


# ----------------------------------------------------------------------------------------------------------
# transforms against segment-anything


def test_box_transform_equals_resize_longest_side() -> None:
    rng = np.random.default_rng(1)
    for (h, w), side in [((120, 160), 160), ((160, 96), 160), ((64, 64), 160), ((481, 640), 1024),
                         ((333, 500), 1024), ((427, 640), 256), ((7, 1000), 1024)]:
        xy = rng.uniform(0, 1, (9, 2)) * [w, h]
        wh = rng.uniform(0, 1, (9, 2)) * [w, h] / 2
        xywh = np.concatenate([xy, wh], axis=1)
        t = SamTransform(side, side, (0.5,) * 3, (0.25,) * 3)
        ours = t.boxes(xywh, (h, w))
        xyxy = np.concatenate([xy, xy + wh], axis=1)
        np.testing.assert_array_equal(ours, ResizeLongestSide(side).apply_boxes(xyxy, (h, w)))
        assert t.input_size(h, w) == ResizeLongestSide.get_preprocess_shape(h, w, side)


def test_image_preprocessing_matches_segment_anything() -> None:
    rng = np.random.default_rng(2)
    array = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    pre = preprocess(64)
    t = SamTransform.from_preprocess(pre)
    x, (h, w) = t.image(Image.fromarray(array))
    resized = ResizeLongestSide(64).apply_image(array)  # PIL bilinear through torchvision
    assert (h, w) == resized.shape[:2] == (45, 64)
    mean = torch.tensor(pre["mean"]).view(3, 1, 1) * 255
    std = torch.tensor(pre["std"]).view(3, 1, 1) * 255
    expected = (torch.from_numpy(resized).permute(2, 0, 1).float() - mean) / std  # Sam.preprocess
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, :h, :w], expected, atol=1e-5, rtol=0)
    assert (x[0, :, h:, :] == 0).all() and (x[0, :, :, w:] == 0).all()


def test_mask_upsampling_matches_sam_postprocess_masks() -> None:
    t = SamTransform(64, 64, (0.5,) * 3, (0.25,) * 3)
    logits = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    fake_sam = SimpleNamespace(image_encoder=SimpleNamespace(img_size=64))
    for original in [(30, 50), (50, 30), (97, 13)]:
        input_size = t.input_size(*original)
        ours = t.mask_logits(logits, input_size, original)
        theirs = Sam.postprocess_masks(fake_sam, logits, input_size, original)
        assert ours.shape == (3, 1, *original)
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_mask_upsampling_known_half_planes() -> None:
    """Low-res logits +1 on the top half of the rows (and, separately, the left half of the columns) of the
    padded S×S frame. Upsampled ×4 (align_corners=False) the zero crossing lies at frame coordinate S/2
    (pixel edges); the frame's h×w crop then maps to the original H×W with scale H/h, W/w, so an original pixel
    i is inside iff its centre (i + 0.5)·h/H lies above S/2."""
    side, original = 64, (30, 50)  # wide image: resized to 38×64, 26 rows of padding
    t = SamTransform(side, side, (0.5,) * 3, (0.25,) * 3)
    h, w = t.input_size(*original)
    assert (h, w) == (38, 64)
    top = torch.full((1, 1, 16, 16), -1.0)
    top[..., :8, :] = 1.0
    left = top.transpose(-1, -2).clone()
    masks = t.masks(torch.cat([top, left]), (h, w), original)
    assert masks.shape == (2, *original) and masks.dtype == torch.bool
    rows = np.array([(i + 0.5) * h / original[0] < side / 2 for i in range(original[0])])
    cols = np.array([(j + 0.5) * w / original[1] < side / 2 for j in range(original[1])])
    assert 0 < rows.sum() < original[0] and cols.sum() == original[1] // 2  # the wide side: exactly half
    np.testing.assert_array_equal(masks[0].numpy(), np.repeat(rows[:, None], original[1], axis=1))
    np.testing.assert_array_equal(masks[1].numpy(), np.repeat(cols[None, :], original[0], axis=0))


def test_filter_boxes_threshold_cap_and_order() -> None:
    scores = np.array([0.3, 0.9, 0.05, 0.9, 0.5])
    p = BoxPrompts(np.arange(20, dtype=np.float64).reshape(5, 4), scores, np.arange(5))
    kept = filter_boxes(p, 0.1, 3)
    np.testing.assert_array_equal(kept.category_ids, [1, 3, 4])  # highest first, ties in file order
    np.testing.assert_array_equal(kept.boxes, p.boxes[[1, 3, 4]])
    assert len(filter_boxes(p, 0.0, None)) == 5
    assert len(filter_boxes(p, 0.95, None)) == 0  # no dummy box for an image left without boxes


def test_select_calibration_first_random_and_hash() -> None:
    images = [CocoImage(i, f"{name}.jpg", 10, 10) for i, name in enumerate("edcba")]
    box = BoxPrompts(np.array([[1.0, 2.0, 3.0, 4.0]]), np.ones(1), np.ones(1, dtype=np.int64))
    prompts = {0: BoxPrompts.empty(), 1: box, 3: box, 4: box}  # 'e' empty, 'c' (id 2) absent
    chosen, skipped = select_calibration(images, prompts, 2, "first", 0)
    assert [im.file_name for im, _ in chosen] == ["d.jpg", "b.jpg"] and skipped == 2
    a, _ = select_calibration(images, prompts, 3, "random", 5)
    b, _ = select_calibration(list(reversed(images)), prompts, 3, "random", 5)  # file order does not matter
    assert [im.file_name for im, _ in a] == [im.file_name for im, _ in b] == ["a.jpg", "b.jpg", "d.jpg"]
    with pytest.raises(ValueError, match="only 3 of 5 images have a box"):
        select_calibration(images, prompts, 4, "first", 0)
    moved = BoxPrompts(box.boxes + 0.5, box.scores, box.category_ids)
    assert calibration_hash(chosen) != calibration_hash([(chosen[0][0], moved), chosen[1]])
    assert calibration_hash(chosen) != calibration_hash(chosen[:1])


# ----------------------------------------------------------------------------------------------------------
# the evaluator against pycocotools


def test_perfect_masks_give_100_map_and_an_empty_image_no_error(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco)
    model = MaskTable(mask_table(coco))
    metrics = task.evaluator(torch.device("cpu"), progress=False).evaluate(model)
    for key in SEGM_METRICS:
        assert metrics[key] == pytest.approx(100.0), key
    assert metrics["num_predictions"] == 5 and metrics["num_images"] == 3
    assert model.encoded == 2  # c.png has no box: not even encoded
    desc = task.describe_data()
    assert desc["val"]["num_images_without_boxes"] == 1 and desc["val"]["num_boxes"] == 5


def test_shifted_masks_and_a_missed_image_score_less(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco)
    table = mask_table(coco)
    ev = task.evaluator(torch.device("cpu"), progress=False)
    shifted = ev.evaluate(MaskTable(table, shift=4))
    assert 0.0 < shifted["segm_mAP"] < 100.0
    # 4 pixels move the r=5 disc below IoU 0.5 but leave the large box above it
    assert shifted["segm_mAP_s"] == 0.0 < shifted["segm_mAP_l"] < 100.0
    # b.png keeps its ground truth but gets no box from the detector: no prediction, no error, lower recall
    missing = [d for d in coco.dets_list if d["image_id"] != 2]
    (tmp_path / "dets_no_b.json").write_text(json.dumps(missing))
    partial = build(coco, val={"det_file": str(tmp_path / "dets_no_b.json")})
    ev = partial.evaluator(torch.device("cpu"), progress=False)
    preds = ev.predictions(MaskTable(table))
    assert {p["image_id"] for p in preds} == {1}
    assert ev.score(preds)["segm_mAP"] < 100.0


def test_no_prediction_gives_zeros(tmp_path) -> None:
    coco = make_coco(tmp_path)
    ev = build(coco).evaluator(torch.device("cpu"), progress=False)
    metrics = ev.score([])
    assert all(metrics[k] == 0.0 for k in SEGM_METRICS) and metrics["num_predictions"] == 0


def test_score_is_detector_score_times_predicted_iou(tmp_path) -> None:
    coco = make_coco(tmp_path)
    ev = build(coco, task={"prompt_chunk": 2}).evaluator(torch.device("cpu"), progress=False)
    iou = lambda box: 0.25 + box[0] / 1000.0  # noqa: E731  (a different IoU per box)
    model = MaskTable(mask_table(coco), iou=iou)
    preds = ev.predictions(model)
    assert model.decoded == [2, 1, 2]  # 3 boxes on a.png, 2 on b.png, in chunks of 2
    by_box = {}
    for d in coco.dets_list:
        x, y, w, h = d["bbox"]
        by_box[(d["image_id"], d["category_id"], round(x, 3))] = (d["score"], (x, y, x + w, y + h))
    assert len(preds) == 5
    for p in preds:
        rle = dict(p["segmentation"])
        x = float(mask_utils.toBbox(rle)[0])
        det_score, box = by_box[(p["image_id"], p["category_id"], round(x, 3))]
        expected_iou = float(torch.tensor(iou(box)))  # the model's float32 IoU
        assert p["score"] == pytest.approx(det_score * expected_iou, rel=1e-12)
        assert set(p) == {"image_id", "category_id", "segmentation", "score"}
        assert isinstance(p["segmentation"]["counts"], str)  # JSON-ready
    json.dumps(preds)


# ----------------------------------------------------------------------------------------------------------
# calibration, protocol record, config


def test_calibration_first_images_with_boxes(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco, num_samples=2)
    batches, info = task.calibration()
    # calib.json lists d, c, a, b; d has no box: skipped and counted
    assert info["num_samples"] == 2 and info["skipped_without_boxes"] == 1
    assert info["files_head"] == ["c.png", "a.png"] and info["order"] == "first" and info["seed"] == 3
    (img_c, boxes_c), (img_a, boxes_a) = batches
    assert img_c.shape == img_a.shape == (1, 3, S, S)
    # c.png is 64×64 → 160×160: scale 2.5; its box x, y, w, h = 4, 6, 20, 30
    torch.testing.assert_close(boxes_c, torch.tensor([[10.0, 15.0, 60.0, 90.0]]))
    assert boxes_a.shape == (3, 4) and boxes_a.dtype == torch.float32
    # another detector file (one box moved) gives another hash
    other = json.loads(open(coco.calib_dets).read())
    other[-1]["bbox"][0] += 1.0
    (tmp_path / "calib_dets2.json").write_text(json.dumps(other))
    _, info2 = build(coco, calib={"det_file": str(tmp_path / "calib_dets2.json")}).calibration()
    assert info2["sha256"] != info["sha256"] and info2["files_head"] == info["files_head"]
    desc = task.describe_data()
    assert desc["calib"]["det_sha256"] != desc["val"]["det_sha256"]
    assert desc["protocol"]["max_dets"] == [1, 10, 100] and desc["protocol"]["metrics_at_max_dets"] == 100


def test_calibration_gt_boxes_random_order_and_caps(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco, task={"calib_boxes": "gt", "calib_order": "random", "calib_max_boxes": 2},
                 calib={"det_file": None}, num_samples=3)
    batches, info = task.calibration()
    # c.png has no ground truth: the 3 samples are a, b, d (sorted by name), whatever the seed
    assert info["files_head"] == ["a.png", "b.png", "d.png"] and info["boxes"] == "gt"
    assert [b.shape[0] for _, b in batches] == [2, 2, 1]  # a.png has 3 boxes, capped at 2
    # d.png (50×80 → 100×160, scale 2): its ground-truth box, in file order
    x, y, w, h = [a for a in coco.anns if a["id"] == 15][0]["bbox"]
    torch.testing.assert_close(batches[2][1], torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32) * 2)
    assert build(coco, task={"calib_boxes": "gt", "calib_order": "random"}, calib={"det_file": None},
                 num_samples=3).calibration()[1]["sha256"] != info["sha256"]  # uncapped: other boxes
    with pytest.raises(ConfigError, match="calib_boxes is 'gt'"):
        build(coco, task={"calib_boxes": "gt"})
    with pytest.raises(DataError, match="only 3 of 4 images have a box"):
        build(coco, num_samples=4)


def test_score_thr_and_max_per_image_reach_the_evaluation(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco, task={"score_thr": 0.65, "max_per_image": 1, "max_dets": [1, 5, 50]}, num_samples=1)
    counts = [len(item.prompts) for item in task.val_images]
    assert counts == [1, 0, 0]  # a.png: 0.9 0.8 0.7 → capped at 1; b.png: 0.6 0.5 < 0.65
    ev = task.evaluator(torch.device("cpu"), progress=False)
    assert ev.max_dets == [1, 5, 50]
    assert task.describe_data()["protocol"]["metrics_at_max_dets"] == 50
    assert "maxDets 50" in task.format_metrics(ev.evaluate(MaskTable(mask_table(coco))))


def test_config_schema_accepts_task_keys_and_rejects_misspelt_ones(tmp_path) -> None:
    coco = make_coco(tmp_path)
    cfg, _ = load_config(write_config(coco, task={"score_thr": 0.05, "max_per_image": 100}))
    assert cfg["task"]["score_thr"] == 0.05 and cfg["task"]["max_per_image"] == 100
    assert cfg["task"]["max_dets"] == [1, 10, 100] and cfg["task"]["calib_order"] == "first"
    assert cfg["data"]["val"]["type"] == "coco" and cfg["data"]["val"]["det_file"] == coco.dets
    with pytest.raises(ConfigError, match="unknown config key 'task.score_th'; did you mean 'task.score_thr'"):
        load_config(write_config(coco, task={"score_th": 0.05}))
    with pytest.raises(ConfigError, match="unknown config key 'data.val.det_fil'"):
        load_config(write_config(coco, val={"det_fil": coco.dets}))
    for bad, match in [({"max_dets": [100, 10, 1]}, "max_dets"), ({"calib_order": "shuffle"}, "calib_order"),
                       ({"prompt_chunk": 0}, "prompt_chunk"), ({"score_thr": "high"}, "score_thr")]:
        with pytest.raises(ConfigError, match=match):
            build(coco, task=bad)
    with pytest.raises(ConfigError, match="data.val.det_file is required"):
        build(coco, val={"det_file": None})
    with pytest.raises(ConfigError, match="not defined for coco_instance"):
        build(coco).distance(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ConfigError, match="resize"):
        CocoInstanceTask(cfg, {**preprocess(), "resize": 256})


def _write(path, obj) -> str:
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def _bad_inputs(coco: SimpleNamespace) -> list[tuple[str, dict, str, str]]:
    """Return (case, config overrides, the file the message must name, a phrase it must contain)."""
    t = coco.tmp
    val = json.loads(open(coco.val).read())
    no_name = copy.deepcopy(val)
    del no_name["images"][1]["file_name"]
    dets = coco.dets_list
    no_score = copy.deepcopy(dets)
    del no_score[2]["score"]
    string_score = copy.deepcopy(dets)
    string_score[0]["score"] = "0.9"
    foreign = copy.deepcopy(dets) + [{**dets[0], "image_id": 999}, {**dets[0], "image_id": 1000}]
    bad_cat = copy.deepcopy(dets) + [{**dets[0], "category_id": 5}]
    os.makedirs(t / "sparse", exist_ok=True)
    Image.new("RGB", (160, 120)).save(t / "sparse" / "a.png")
    Image.new("RGB", (64, 64)).save(t / "sparse" / "c.png")
    os.makedirs(t / "resized", exist_ok=True)
    for name, size in (("a.png", (160, 120)), ("b.png", (96, 150)), ("c.png", (64, 64))):
        Image.new("RGB", size).save(t / "resized" / name)
    missing = str(t / "nowhere.json")
    return [
        ("ann missing", {"val": {"ann_file": missing}}, missing, "not found"),
        ("ann not json", {"val": {"ann_file": _write(t / "bad.json", "{not json")}}, str(t / "bad.json"), "not JSON"),
        ("ann wrong field", {"val": {"ann_file": _write(t / "noname.json", no_name)}}, str(t / "noname.json"),
         "file_name"),
        ("det missing", {"val": {"det_file": missing}}, missing, "not found"),
        ("det not json", {"val": {"det_file": _write(t / "dets_bad.json", "[{]")}}, str(t / "dets_bad.json"),
         "not JSON"),
        ("det not a list", {"val": {"det_file": _write(t / "dets_obj.json", {"a": 1})}}, str(t / "dets_obj.json"),
         "results list"),
        ("det no score", {"val": {"det_file": _write(t / "dets_ns.json", no_score)}}, str(t / "dets_ns.json"),
         "entry 2 needs a finite number 'score'"),
        ("det string score", {"val": {"det_file": _write(t / "dets_ss.json", string_score)}},
         str(t / "dets_ss.json"), "entry 0 needs a finite number 'score'"),
        ("det empty", {"val": {"det_file": _write(t / "dets_empty.json", [])}}, str(t / "dets_empty.json"),
         "empty list"),
        ("det foreign ids", {"val": {"det_file": _write(t / "dets_ids.json", foreign)}}, str(t / "dets_ids.json"),
         "2 of 4 image ids are not in"),
        ("det category", {"val": {"det_file": _write(t / "dets_cat.json", bad_cat)}}, str(t / "dets_cat.json"),
         "category ids 5"),
        ("calib det foreign", {"calib": {"det_file": _write(t / "cd_ids.json", foreign)}}, str(t / "cd_ids.json"),
         "image ids are not in"),
        ("image missing", {"val": {"root": str(t / "sparse")}}, "b.png", "missing under"),
        ("image size", {"val": {"root": str(t / "resized")}}, "b.png", "is 96x150 but"),
    ]


def test_bad_input_is_a_one_line_data_error_naming_the_file(tmp_path) -> None:
    coco = make_coco(tmp_path)
    for case, overrides, name, phrase in _bad_inputs(coco):
        with pytest.raises(DataError) as info:
            build(coco, **overrides)
        message = str(info.value)
        assert "\n" not in message, case
        assert name in message and phrase in message, (case, message)
    # the foreign ids case also lists the first few ids
    with pytest.raises(DataError, match=r"first: 999, 1000"):
        build(coco, val={"det_file": str(tmp_path / "dets_ids.json")})


# ----------------------------------------------------------------------------------------------------------
# a real tiny SAM through the evaluator's model loop


class ForwardOnly(nn.Module):
    """The same model without encode/decode: the evaluator falls back to ``model(image, boxes)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, boxes: torch.Tensor):
        return self.model(image, boxes)


def test_real_tiny_sam_model_loop_and_chunking(tmp_path) -> None:
    coco = make_coco(tmp_path)
    model, pre = build_model(dict(type="sam", name="sam_tiny", weights="random",
                                  kwargs=dict(image_size=128, encoder_depth=2, encoder_global_attn_indexes=[1])))
    task = build_task(load_config(write_config(coco))[0], pre)
    batches, _ = task.calibration()
    with torch.no_grad():
        logits, iou = model(*batches[1])
    assert logits.shape == (3, 1, 32, 32) and iou.shape == (3, 1)  # a.png's 3 boxes, low-res S/4 masks
    whole = task.evaluator(torch.device("cpu"), progress=False)
    chunked = CocoInstanceEvaluator(task.val_images, task.val_ann.dataset, coco.root, coco.val, task.transform,
                                    prompt_chunk=2, progress=False)
    a, b, c = whole.predictions(model), chunked.predictions(model), whole.predictions(ForwardOnly(model))
    assert len(a) == len(b) == len(c) == 5
    sizes = {1: [120, 160], 2: [160, 96]}
    for p, q, r in zip(a, b, c):
        assert p["segmentation"]["size"] == sizes[p["image_id"]]  # masks at the original size
        assert p["image_id"] == q["image_id"] == r["image_id"] and p["category_id"] == q["category_id"]
        assert p["score"] == pytest.approx(q["score"], rel=1e-5) == pytest.approx(r["score"], rel=1e-5)
        assert mask_utils.area(p["segmentation"]) > 0
        iou = mask_utils.iou([p["segmentation"]], [q["segmentation"], r["segmentation"]], [0, 0])
        assert iou.min() > 0.999  # the same masks up to float summation order
    metrics = whole.score(a)
    assert all(isinstance(metrics[k], float) for k in SEGM_METRICS)
    assert not model.training


def test_evaluated_images_only(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco, task={"val_max_images": 1})
    assert [item.image.file_name for item in task.val_images] == ["a.png"]
    ev = task.evaluator(torch.device("cpu"), progress=False)
    metrics = ev.evaluate(MaskTable(mask_table(coco)))
    # b.png's ground truth is outside the evaluated images: a.png alone is perfect
    assert metrics["segm_mAP"] == pytest.approx(100.0) and metrics["num_images"] == 1


def test_size_range_without_ground_truth_keeps_minus_one(tmp_path) -> None:
    coco = make_coco(tmp_path)
    task = build(coco)
    only_b = [item for item in task.val_images if item.image.file_name == "b.png"]
    ev = CocoInstanceEvaluator(only_b, task.val_ann.dataset, coco.root, coco.val, task.transform, progress=False)
    metrics = ev.evaluate(MaskTable(mask_table(coco)))
    # b.png's two objects are both medium: no small or large ground truth, so COCOeval's AP there is undefined
    assert metrics["segm_mAP_m"] == pytest.approx(100.0) == metrics["segm_mAP"]
    assert metrics["segm_mAP_s"] == -1.0 == metrics["segm_mAP_l"]
