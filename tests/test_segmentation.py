"""Semantic segmentation: the confusion-matrix metrics against hand-computed values, sliding-window inference,
label loading (layouts, palettes, reduce_zero_label) and its one-line errors, the per-pixel distance, the
segmentation builders through the CNN adapter, and tiny end-to-end runs with tools/quant.py and tools/test.py."""
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ptqvision.data.segmentation import (LabelRules, SegPreprocess, calibration_crops, load_label, scan_split)
from ptqvision.errors import DataError
from ptqvision.eval.segmentation import (InferenceSettings, SegmentationEvaluator, confusion_matrix,
                                         segmentation_metrics, slide_inference, slide_windows, whole_inference)
from ptqvision.tasks.semantic_segmentation import pixel_kl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_seg_demo  # noqa: E402
import quant as quant_cli  # noqa: E402
import test as test_cli  # noqa: E402

DEMO_WEIGHTS = ROOT / "data" / "demo" / "seg_shapes" / "seg_shapes_net.pth"


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_match_a_hand_computed_confusion_matrix():
    # 8 pixels, 4 classes; pixel 5 is ignored (its prediction, class 2, counts nowhere), so class 2 is absent
    # from labels and predictions and is left out of the mean.
    label = torch.tensor([0, 0, 1, 1, 1, 255, 3, 0])
    pred = torch.tensor([0, 1, 1, 1, 0, 2, 3, 3])
    conf = confusion_matrix(pred, label, 4, ignore_index=255)
    expected = torch.tensor([[1, 1, 0, 1],   # label 0: predicted 0, 1, 3
                             [1, 2, 0, 0],   # label 1: predicted 1, 1, 0
                             [0, 0, 0, 0],
                             [0, 0, 0, 1]])  # label 3: predicted 3
    assert conf.dtype == torch.int64 and torch.equal(conf, expected)
    m = segmentation_metrics(conf, ["a", "b", "c", "d"])
    # IoU = TP / (label area + predicted area - TP): a 1/(3+2-1), b 2/(3+3-2), d 1/(1+2-1)
    assert m["per_class"]["a"] == pytest.approx(25.0) and m["per_class"]["b"] == pytest.approx(50.0)
    assert m["per_class"]["c"] is None and m["per_class"]["d"] == pytest.approx(50.0)
    assert m["mIoU"] == pytest.approx(100 * (0.25 + 0.5 + 0.5) / 3)
    assert m["aAcc"] == pytest.approx(100 * 4 / 7)  # 4 of the 7 labelled pixels right
    assert m["mAcc"] == pytest.approx(100 * (1 / 3 + 2 / 3 + 1) / 3)
    assert m["num_classes_present"] == 3 and m["num_pixels"] == 7
    json.dumps(m)  # None, not NaN: results.json stays standard JSON


def test_a_class_only_predicted_counts_with_iou_zero():
    conf = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 3)
    m = segmentation_metrics(conf, ["x", "y", "z"])
    assert m["per_class"] == {"x": 50.0, "y": 0.0, "z": None}  # y: predicted, never labelled -> union 1, IoU 0
    assert m["mIoU"] == pytest.approx(25.0) and m["per_class_acc"]["y"] is None


class ConstantLogits(nn.Module):
    """Logits that favour class ``(x > 0)`` per pixel of the first channel (a pointwise classifier)."""

    def forward(self, x):
        return torch.cat([-x[:, :1], x[:, :1], torch.zeros_like(x[:, :1]) - 5], dim=1)


def test_the_evaluator_accumulates_one_matrix_over_the_set():
    torch.manual_seed(0)
    images = [torch.randn(3, 4, 6), torch.randn(3, 5, 5)]
    labels = [torch.randint(0, 2, (4, 6)), torch.randint(0, 3, (5, 5))]
    labels[0][0, 0] = 255
    loader = [(im, lab, i) for i, (im, lab) in enumerate(zip(images, labels))]
    ev = SegmentationEvaluator(loader, 3, ["a", "b", "c"], InferenceSettings(), progress=False)
    got = ev.evaluate(ConstantLogits())
    preds = [(im[0] > 0).long() for im in images]
    total = sum(confusion_matrix(p, lab, 3) for p, lab in zip(preds, labels))
    assert got["mIoU"] == pytest.approx(segmentation_metrics(total, "abc")["mIoU"]) and got["num_images"] == 2
    per_image = [segmentation_metrics(confusion_matrix(p, lab, 3), "abc")["mIoU"] for p, lab in zip(preds, labels)]
    assert got["mIoU"] != pytest.approx(sum(per_image) / 2)  # not a mean of per-image scores


# -------------------------------------------------------------------------------------------- inference
class PointwiseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


class SpatialNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 5, padding=2)

    def forward(self, x):
        return self.conv(torch.relu(self.conv(x)[:, :3]))


def test_slide_windows_follow_mmseg_and_cover_the_image():
    # rows = max(H - ch + sh - 1, 0) // sh + 1 = 1, cols = (683 - 512 + 340) // 341 + 1 = 2; the last window ends at
    # the border
    assert slide_windows(512, 683, (512, 512), (341, 341)) == [(0, 0, 512, 512), (0, 171, 512, 683)]
    assert slide_windows(100, 50, (512, 512), (341, 341)) == [(0, 0, 100, 50)]  # smaller than the window
    cover = torch.zeros(37, 53)
    for t, l, b, r in slide_windows(37, 53, (16, 20), (10, 7)):
        assert b - t == 16 and r - l == 20
        cover[t:b, l:r] += 1
    assert bool((cover > 0).all())


def test_sliding_window_equals_whole_image_where_the_window_covers_it():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 24, 30)
    with torch.no_grad():
        net = SpatialNet().eval()
        assert torch.equal(slide_inference(net, x, (24, 30), (8, 8)), whole_inference(net, x))
        # a pointwise classifier sees the same pixels in every window: averaging overlapping windows changes nothing,
        # and a window larger than the image is padded and cut back
        point = PointwiseNet().eval()
        whole = whole_inference(point, x)
        assert torch.allclose(slide_inference(point, x, (10, 12), (6, 5), batch_size=3), whole, atol=1e-6)
        assert torch.allclose(slide_inference(point, x, (32, 40), (16, 16)), whole, atol=1e-6)
        # a spatial net differs where windows cut its receptive field
        assert not torch.allclose(slide_inference(net, x, (10, 12), (6, 5)), whole_inference(net, x), atol=1e-4)


def test_logits_are_resized_to_the_label_size_not_the_labels():
    net = PointwiseNet().eval()
    x = torch.randn(1, 3, 8, 10)
    with torch.no_grad():
        out = InferenceSettings().run(net, x, (16, 20))
        ref = F.interpolate(net(x), size=(16, 20), mode="bilinear", align_corners=False)
    assert torch.equal(out, ref)


def test_preprocess_resize_rules():
    pre = SegPreprocess(resize=(2048, 512), keep_ratio=True)
    assert pre.target_size(375, 500) == (512, 683)  # min(2048 / 500, 512 / 375) = 1.365
    assert pre.target_size(1024, 2048) == (512, 1024)
    assert SegPreprocess(resize=520).target_size(375, 500) == (520, 693)
    assert SegPreprocess(resize=(64, 96), keep_ratio=False).target_size(375, 500) == (64, 96)
    assert SegPreprocess().target_size(7, 9) == (7, 9)


# ------------------------------------------------------------------------------------------------- data
def _png(path: Path, array: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array.astype(np.uint8))
    if palette:  # colours unrelated to the indices: reading colours would give other numbers
        im.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200] + [7] * (3 * 253))
    im.save(path)


def _rgb(path: Path, h: int, w: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(path)


def test_voc_palette_labels_keep_their_indices_and_reduce_zero_label(tmp_path):
    voc = tmp_path / "VOC2012"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("b\na\n")
    for i in "ab":
        _rgb(voc / "JPEGImages" / f"{i}.jpg", 4, 5)
        _png(voc / "SegmentationClass" / f"{i}.png", np.array([[0, 1, 2, 255, 0]] * 4), palette=True)
    split = scan_split({"type": "voc", "root": str(voc), "split": "val"}, "data.val")
    assert [Path(s.image).name for s in split.samples] == ["a.jpg", "b.jpg"]  # sorted by path
    assert Image.open(split.samples[0].label).mode == "P"
    label = load_label(split.samples[0].label, LabelRules(21))
    assert label[0].tolist() == [0, 1, 2, 255, 0]
    reduced = load_label(split.samples[0].label, LabelRules(150, reduce_zero_label=True))
    assert reduced[0].tolist() == [255, 0, 1, 255, 255]  # 0 -> ignore, c -> c - 1, 255 stays ignored


def test_ade20k_and_cityscapes_layouts(tmp_path):
    ade = tmp_path / "ADEChallengeData2016"
    for i in ("x2", "x1"):
        _rgb(ade / "images" / "validation" / f"{i}.jpg", 3, 4)
        _png(ade / "annotations" / "validation" / f"{i}.png", np.ones((3, 4)))
    split = scan_split({"type": "ade20k", "root": str(ade), "split": "validation"}, "data.val")
    assert [split.relative(s.label) for s in split.samples] == ["annotations/validation/x1.png",
                                                                 "annotations/validation/x2.png"]
    city = tmp_path / "cityscapes"
    _rgb(city / "leftImg8bit" / "val" / "bonn" / "bonn_0_0_leftImg8bit.png", 2, 4)
    _png(city / "gtFine" / "val" / "bonn" / "bonn_0_0_gtFine_labelTrainIds.png", np.zeros((2, 4)))
    split = scan_split({"type": "cityscapes", "root": str(city), "split": "val"}, "data.val")
    assert split.relative(split.samples[0].label) == "gtFine/val/bonn/bonn_0_0_gtFine_labelTrainIds.png"
    assert len(split.describe()["files_sha256"]) == 64
    os.unlink(city / "gtFine" / "val" / "bonn" / "bonn_0_0_gtFine_labelTrainIds.png")
    with pytest.raises(DataError, match="label map not found: .*bonn_0_0_gtFine_labelTrainIds.png"):
        scan_split({"type": "cityscapes", "root": str(city), "split": "val"}, "data.val")
    # calibration reads images only
    assert scan_split({"type": "cityscapes", "root": str(city), "split": "val"}, "c", need_labels=False).samples


def test_calibration_crops_are_seeded_fixed_size_and_hashed(tmp_path):
    lines = []
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (30, 20), (64, 64), (50, 40), (48, 48), (36, 60)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png")
    (tmp_path / "calib.txt").write_text("\n".join(lines) + "\n")
    split = scan_split({"type": "list", "list_file": str(tmp_path / "calib.txt")}, "data.calib", need_labels=False)
    a, ra = calibration_crops(split, 3, 7, (32, 32), SegPreprocess(), 2)
    b, rb = calibration_crops(split, 3, 7, (32, 32), SegPreprocess(), 2)
    assert [t.shape for t in a] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and ra == rb and len(ra["sha256"]) == 64
    assert ra["crop"] == [32, 32] and ra["num_samples"] == 3
    # the seed picks the images (and the hash follows them): 20 seeds give more than one choice
    assert len({calibration_crops(split, 3, s, (32, 32), SegPreprocess(), 2)[1]["sha256"] for s in range(20)}) > 1
    # an image smaller than the crop is zero-padded at the bottom and right: (30, 20) -> the last 12 columns
    small = scan_split({"type": "list", "list_file": str(tmp_path / "calib.txt")}, "c", need_labels=False)
    one = type(small)(small.layout, small.root, None, small.list_file, small.samples[1:2])
    (x,), _ = calibration_crops(one, 1, 0, (32, 32), SegPreprocess(), 1)
    assert bool((x[0, :, :, 20:] == 0).all()) and bool((x[0, :, 30:, :] == 0).all()) and bool((x[0, :, :30, :20] != 0).any())
    with pytest.raises(DataError, match="calib.num_samples must be in 1..6"):
        calibration_crops(split, 7, 7, (32, 32), SegPreprocess(), 2)


# -------------------------------------------------------------------------------------------- distance
def test_pixel_kl_is_zero_for_equal_logits_and_matches_a_hand_computation():
    z = torch.randn(2, 5, 3, 4)
    assert float(pixel_kl(z, z)) == pytest.approx(0.0, abs=1e-7)
    # two pixels: at the first p = softmax(0, ln 3) = (1/4, 3/4), q = (1/2, 1/2); at the second p = q
    ref = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]).view(1, 2, 1, 2)
    out = torch.zeros(1, 2, 1, 2)
    kl_first = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert float(pixel_kl(ref, out)) == pytest.approx(kl_first / 2)  # averaged over the 2 pixels
    # T = 2 halves the logits: p = softmax(0, ln 3 / 2) = (1 / (1 + sqrt 3), sqrt 3 / (1 + sqrt 3))
    p1 = 1 / (1 + math.sqrt(3))
    kl_t2 = p1 * math.log(p1 / 0.5) + (1 - p1) * math.log((1 - p1) / 0.5)
    assert float(pixel_kl(ref, out, 2.0)) == pytest.approx(kl_t2 / 2)
    # (B, C) logits: the classification task's batch-mean KL
    from ptqvision.recon.losses import logits_kl

    a, b = torch.randn(4, 7), torch.randn(4, 7)
    assert float(pixel_kl(a, b, 4.0)) == pytest.approx(float(logits_kl(a, b, 4.0)), rel=1e-5)


# ----------------------------------------------------------------------------------------------- models
def test_builders_trace_and_quantize_through_the_cnn_adapter():
    from ptqvision.models import adapter_for, build_model
    from ptqvision.models.schedule import run_items
    from ptqvision.nn import QuantConfig, calibrate, placement

    torch.manual_seed(0)
    x = torch.randn(2, 3, 48, 64)
    for cfg in (dict(type="seg_shapes_net", num_classes=7, kwargs=dict(width=4)),
                dict(type="torchvision_seg", name="lraspp_mobilenet_v3_large", num_classes=3),
                dict(type="timm_seg", name="mobilenetv3_small_050", num_classes=3, kwargs=dict(levels=2, head_width=8))):
        model, pre = build_model({**cfg, "weights": "random"})
        assert "resize" not in pre  # the resize is the task's
        with torch.no_grad():
            y = model(x)
        assert isinstance(y, torch.Tensor) and y.shape == (2, cfg["num_classes"], 48, 64)
        adapter = adapter_for(model)
        q = adapter.quantize(model, QuantConfig.from_any(dict(w_bits=4, a_bits=4)))
        calibrate(q, [x], progress=False)
        rows = {r["name"]: r for r in placement(q)}
        # the logits are never quantized: no activation quantizer after the last layers
        assert not any(n.endswith(("classifier.output_quantizer", "classifier.out_quantizer")) for n in rows), cfg
        schedule = adapter.schedule(q, "block")
        with torch.no_grad():  # the schedule's items hold tensors only and reproduce the twin
            assert torch.equal(run_items(schedule.items, {schedule.inputs[0]: x}, schedule.output), q(x))
        if cfg["type"] == "torchvision_seg":  # LRASPP's two classifiers are both heads: 8-bit weights
            assert rows["classifier.low_classifier.weight_quantizer"]["bits"] == 8
            assert rows["classifier.high_classifier.weight_quantizer"]["bits"] == 8
            assert [u.name for u in schedule.units][-1] == "classifier"


# ------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_shapes")
    make_seg_demo.write_semantic_split(root, "val", 5, 901)  # seeds the shipped splits do not use
    make_seg_demo.write_semantic_split(root, "calib", 6, 902)
    return root


def write_config(path: Path, root: Path, method: str = "rtn", **extra) -> str:
    """Write a config of the demo model on the list files under ``root``; return its path."""
    body = f"""
_base_ = ['{ROOT}/configs/_base_/models/seg_shapes_net.py', '{ROOT}/configs/_base_/datasets/seg_shapes.py',
          '{ROOT}/configs/_base_/quant/cnn_default.py', '{ROOT}/configs/_base_/methods/{method}.py']
model = dict(weights='{DEMO_WEIGHTS}')
task = dict(class_names={make_seg_demo.CLASS_NAMES!r})
data = dict(calib=dict(list_file='{root}/calib.txt'), val=dict(list_file='{root}/val.txt'))
calib = dict(num_samples=6, batch_size=3)
quant = dict(w_bits=4, a_bits=4)
eval = dict(progress=False)
"""
    for key, value in extra.items():
        body += f"{key} = {value!r}\n"
    path.write_text(body)
    return str(path)


def test_rtn_end_to_end_and_test_py_reproduces(tmp_path, shapes_set, capsys):
    cfg = write_config(tmp_path / "seg_rtn.py", shapes_set)
    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work), "--cfg-options", "quant.w_bits=8", "quant.a_bits=8"]) == 0
    assert "mIoU" in capsys.readouterr().out
    r = json.loads((work / "results.json").read_text())
    fp, q = r["metrics"]["fp"], r["metrics"]["quant"]
    assert r["task"] == "semantic_segmentation" and {"mIoU", "aAcc", "mAcc", "per_class"} <= set(q)
    assert list(q["per_class"]) == list(make_seg_demo.CLASS_NAMES) and q["num_images"] == 5
    # the shipped demo model on fresh scenes of the same generator; background everywhere would score about 13
    # (one class of seven at an IoU near 90)
    assert fp["mIoU"] > 20
    assert abs(fp["mIoU"] - q["mIoU"]) < 5  # W8A8 round-to-nearest is close to full precision
    proto = r["data"]["protocol"]
    assert (proto["num_classes"], proto["ignore_index"], proto["reduce_zero_label"]) == (7, 255, False)
    assert proto["inference"]["mode"] == "whole" and proto["preprocess"]["resize"] == [128, 128]
    assert r["data"]["val"]["num_images"] == 5 and len(r["data"]["val"]["files_sha256"]) == 64
    assert r["calib"]["crop"] == [96, 96] and len(r["calib"]["sha256"]) == 64
    assert test_cli.main([cfg, str(work / "quantized.pth"), "--cfg-options", "quant.w_bits=8", "quant.a_bits=8"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly" in out and json.loads(out.splitlines()[0])["mIoU"] == q["mIoU"]


@pytest.mark.parametrize("method,recon", [
    ("qdrop", dict(iters=3, batch_size=3)),
    ("pdquant", dict(iters=2, batch_size=3, dc_iters=2, act_reinit_samples=6, pd_temperature=1.0)),
])
def test_reconstruction_methods_end_to_end(tmp_path, shapes_set, capsys, method, recon):
    cfg = write_config(tmp_path / f"seg_{method}.py", shapes_set, method, recon=recon)
    work = tmp_path / "work"
    assert quant_cli.main([cfg, "--work-dir", str(work)]) == 0
    r = json.loads((work / "results.json").read_text())
    assert r["method"] == method and r["reconstruction"]["units"] == 12
    assert all(math.isfinite(u["loss_after"]) for u in r["reconstruction"]["per_unit"])
    assert 0 <= r["metrics"]["quant"]["mIoU"] <= 100
    if method == "pdquant":  # the per-pixel distance through the tail, and the residual blocks corrected
        assert sum("dc" in u for u in r["reconstruction"]["per_unit"]) == 4
        assert "prediction difference: KL through the full-precision tail, T=1" in (work / "run.log").read_text()
    capsys.readouterr()
    assert test_cli.main([cfg, str(work / "quantized.pth")]) == 0
    assert "reproduced exactly" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- bad input
def _bad_set(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / kind
    _rgb(root / "im.png", 20, 24)
    label = np.zeros((20, 24))
    if kind == "size":
        label = np.zeros((20, 25))
    if kind == "index":
        label[3, 4] = 9
    path = root / "lab.png"
    if kind == "rgb":
        _rgb(path, 20, 24)
    elif kind != "missing":
        _png(path, label)
    (root / "val.txt").write_text("im.png lab.png\n")
    (root / "calib.txt").write_text("im.png\n")
    return root


@pytest.mark.parametrize("kind,message", [
    ("size", "label map {root}/lab.png is 20x25 (HxW) but its image {root}/im.png is 20x24"),
    ("index", "label map {root}/lab.png: class index 9 is out of range for 7 classes"),
    ("missing", "data.val: label map not found: {root}/lab.png"),
    ("rgb", "label map {root}/lab.png has mode RGB"),
])
def test_bad_labels_give_one_line_errors_naming_the_file(tmp_path, capsys, kind, message):
    root = _bad_set(tmp_path, kind)
    cfg = write_config(tmp_path / "bad.py", root)
    assert quant_cli.main([cfg, "--work-dir", str(tmp_path / "w"), "--cfg-options", "calib.num_samples=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message.format(root=root) in err[0]
    assert not (tmp_path / "w" / "results.json").exists()


def test_lazy_label_check_names_the_file_at_evaluation(tmp_path):
    root = _bad_set(tmp_path, "index")
    from ptqvision.data.segmentation import SegEvalSet

    split = scan_split({"type": "list", "list_file": str(root / "val.txt")}, "data.val")
    loader = SegEvalSet(split, split.samples, SegPreprocess(), LabelRules(7))
    ev = SegmentationEvaluator(loader, 7, [str(i) for i in range(7)], InferenceSettings(), progress=False)
    with pytest.raises(DataError, match=f"label map {root}/lab.png: class index 9"):
        ev.evaluate(PointwiseNet())


@pytest.mark.parametrize("option,message", [
    ("task.inferense=slide", "unknown config key 'task.inferense'; did you mean 'task.inference'?"),
    ("data.val.list_fil=x", "unknown config key 'data.val.list_fil'; did you mean 'data.val.list_file'?"),
    ("task.inference=slide", "task.inference='slide' needs task.crop_size and task.stride"),
    ("task.inference=tiles", "task.inference must be one of"),
    ("task.ignore_index=3", "task.ignore_index 3 is a class index"),
    ("data.preprocess.resize=256", "data.preprocess.resize is not used by semantic_segmentation"),
    ("data.val.type=coco", "data.val.type must be one of"),
    ("task.calib_crop=None", "task.calib_crop must be [height, width]"),
])
def test_task_config_keys_are_checked(tmp_path, shapes_set, capsys, option, message):
    cfg = write_config(tmp_path / "seg.py", shapes_set)
    assert quant_cli.main([cfg, "--work-dir", str(tmp_path / "w"), "--cfg-options", option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_demo_configs_resolve_to_the_shipped_files():
    from ptqvision.config import load_config

    for method in ("rtn", "qdrop", "pdquant"):
        cfg, _ = load_config(str(ROOT / "configs" / "demo" / f"seg_shapes_{method}_w4a4.py"))
        assert cfg["task"]["type"] == "semantic_segmentation" and cfg["method"]["type"] == method
        assert "synthetic" in cfg["note"]
        for path in (cfg["model"]["weights"], cfg["data"]["val"]["list_file"], cfg["data"]["calib"]["list_file"]):
            assert (ROOT / path).is_file(), path
