"""SAM for semantic segmentation (Semantic Segment Anything): the vote of SAM's masks on a semantic branch, the task
with each kind of semantic branch (a folder of label maps, a segmentation config in full precision or quantized), the
pipeline through tools/quant.py and tools/test.py on demo scenes, bad input, and the configs."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ptqvision.config import load_config
from ptqvision.errors import ConfigError, DataError
from ptqvision.eval.sam_semantic import MaskGeneratorSettings, vote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import quant as quant_cli  # noqa: E402
import test as test_cli  # noqa: E402

SEG = os.path.join(ROOT, "data", "demo", "seg_shapes")
DEMO = os.path.join(ROOT, "configs", "demo", "sam_shapes_semantic_{}_w4a4.py")
SEG_RTN = os.path.join(ROOT, "configs", "demo", "seg_shapes_rtn_w4a4.py")
SEG_WEIGHTS_SHA256 = "0bb0c75435f14663974ad2b433db063683c0a7012ecf6efce93f59457760a198"  # data/demo/seg_shapes/README.md
CLASSES = ["background", "disc", "ellipse", "rectangle", "triangle", "star", "ring"]


def test_vote_gives_each_mask_the_majority_class_smaller_masks_last():
    classes = torch.tensor([[0, 0, 1, 1],
                            [0, 2, 1, 1],
                            [3, 3, 3, 1],
                            [3, 3, 0, 0]])
    big = np.zeros((4, 4), bool)
    big[:, :2] = True          # the left half: classes 0, 0, 0, 2, 3, 3, 3, 3 -> 3
    small = np.zeros((4, 4), bool)
    small[0:2, 0:2] = True     # inside it, the top-left 2x2: 0, 0, 0, 2 -> 0 (visited after the larger mask)
    tie = np.zeros((4, 4), bool)
    tie[3, 2:] = True          # 0, 0 -> 0
    tie[2, 3] = False
    tie2 = np.zeros((4, 4), bool)
    tie2[1, 2] = tie2[2, 2] = True  # classes 1 and 3, one each: the smaller class wins
    out = vote(classes, [small, big, tie, tie2], num_classes=4)
    expected = torch.tensor([[0, 0, 1, 1],
                             [0, 0, 1, 1],
                             [3, 3, 1, 1],
                             [3, 3, 0, 0]])
    assert torch.equal(out, expected)
    # the majority is taken on the branch's own map, not on what an earlier mask wrote
    assert torch.equal(vote(classes, [], 4), classes)  # no mask: the branch's classes
    empty = np.zeros((4, 4), bool)
    assert torch.equal(vote(classes, [empty], 4), classes)


def test_mask_generator_settings_are_checked():
    assert MaskGeneratorSettings.from_cfg({}).points_per_side == 32
    assert MaskGeneratorSettings.from_cfg({"points_per_side": 8}).points_per_side == 8
    with pytest.raises(ConfigError, match="points_per_sid"):
        MaskGeneratorSettings.from_cfg({"points_per_sid": 8})
    with pytest.raises(ConfigError, match="points_per_batch"):
        MaskGeneratorSettings.from_cfg({"points_per_batch": 0})


# ------------------------------------------------------------------------------------------------- helpers
def _png(path, array, mode="L"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)


def _build_task(config: str, options: list[str]):
    """Return the sam_semantic task of a config, built as tools/quant.py builds it."""
    from ptqvision.models import build_model
    from ptqvision.runner import build_preprocess
    from ptqvision.tasks import build_task

    cfg, _ = load_config(config, options)
    _, default_pre = build_model({**cfg["model"], "weights": "random"})
    return build_task(cfg, build_preprocess(cfg, default_pre))


class FixedMasks:
    """A stand-in for the automatic mask generator: the given masks for each image in turn."""

    def __init__(self, per_image):
        self.per_image = list(per_image)

    def generate(self, rgb):
        masks = self.per_image.pop(0)
        assert all(m.shape == rgb.shape[:2] for m in masks)
        return [{"segmentation": m} for m in masks]


@pytest.fixture
def hand_set(tmp_path):
    """Two 8x8 images, their label maps, a folder of predictions and a config with that folder as the branch.

    a: label classes 1 (left half) and 2 (right half); prediction: column 3 wrongly 2.
    b: label class 0, top row 255 (ignored); prediction: pixel (4, 4) wrongly 3."""
    root = tmp_path / "set"
    for name, colour in (("a", 40), ("b", 200)):
        _png(str(root / "images" / f"{name}.png"), np.full((8, 8, 3), colour), "RGB")
    label_a = np.ones((8, 8)) * 1
    label_a[:, 4:] = 2
    pred_a = label_a.copy()
    pred_a[:, 3] = 2
    label_b = np.zeros((8, 8))
    label_b[0] = 255
    pred_b = np.zeros((8, 8))
    pred_b[4, 4] = 3
    for name, label, pred in (("a", label_a, pred_a), ("b", label_b, pred_b)):
        _png(str(root / "labels" / f"{name}.png"), label)
        _png(str(root / "pred" / f"{name}.png"), pred)
    (root / "val.txt").write_text("images/a.png labels/a.png\nimages/b.png labels/b.png\n")
    (root / "calib.txt").write_text("images/a.png\nimages/b.png\n")
    cfg = tmp_path / "hand.py"
    cfg.write_text(f"""
_base_ = ['{ROOT}/configs/_base_/quant/sam_default.py', '{ROOT}/configs/_base_/methods/rtn.py']
model = dict(type='sam', name='sam_tiny', weights='random')
task = dict(type='sam_semantic', num_classes=7, class_names={CLASSES!r},
            semantic_branch=dict(folder='{root}/pred'), mask_generator=dict(points_per_side=2),
            calib_points_per_side=3)
data = dict(calib=dict(type='list', list_file='{root}/calib.txt'), val=dict(type='list', list_file='{root}/val.txt'))
calib = dict(num_samples=2, seed=1005, batch_size=1)
eval = dict(progress=False)
""")
    return root, str(cfg)


@pytest.fixture(scope="module")
def demo_scenes(tmp_path_factory):
    """List files of the first 3 validation and 2 calibration scenes of data/demo/seg_shapes (absolute paths)."""
    root = tmp_path_factory.mktemp("seg_scenes")
    for split, n in (("val", 3), ("calib", 2)):
        with open(os.path.join(SEG, f"{split}.txt")) as f:
            lines = [" ".join(os.path.join(SEG, p) for p in line.split()) for line in f.read().splitlines()[:n]]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def _demo_options(scenes) -> list[str]:
    return [f"data.val.list_file={scenes}/val.txt", f"data.calib.list_file={scenes}/calib.txt", "calib.num_samples=2",
            "eval.progress=False"]


# ------------------------------------------------------------------------------------------------- the task
def test_folder_branch_votes_the_masks_into_one_confusion_matrix(hand_set, monkeypatch):
    """Hand-computed: the mask over a's left half turns its wrong column back to class 1; b has no mask."""
    import ptqvision.tasks.sam_semantic as mod

    root, cfg = hand_set
    task = _build_task(cfg, [])
    left = np.zeros((8, 8), bool)
    left[:, :4] = True  # prediction inside: 24 pixels of class 1, 8 of class 2 -> class 1
    monkeypatch.setattr(mod, "mask_generator", lambda model, settings: FixedMasks([[left], []]))
    m = task.evaluator(torch.device("cpu"), progress=False).evaluate(torch.nn.Identity())
    # branch alone: background 55/56, class 1 24/32, class 2 32/40, class 3 0/1 (only predicted); 4..6 absent
    assert m["branch_mIoU"] == pytest.approx(100 * (55 / 56 + 24 / 32 + 32 / 40 + 0) / 4)
    # voted: a is right everywhere, b unchanged
    assert m["mIoU"] == pytest.approx(100 * (55 / 56 + 1 + 1 + 0) / 4)
    assert m["aAcc"] == pytest.approx(100 * 119 / 120) and m["num_pixels"] == 120  # b's top row ignored
    assert m["per_class"]["star"] is None and m["per_class"]["rectangle"] == 0.0
    assert (m["num_images"], m["masks_per_image"]) == (2, 0.5)
    branch = task.describe_data()["protocol"]["quantized"]["semantic_branch"]
    assert branch["kind"] == "label-map folder" and branch["quantized"] is None and branch["num_predictions"] == 2
    assert len(branch["predictions_sha256"]) == 64


def test_calibration_gives_each_image_a_grid_of_point_prompts_in_the_models_frame(hand_set):
    _, cfg = hand_set
    task = _build_task(cfg, [])
    batches, record = task.calibration()
    assert len(batches) == 2 and record["num_samples"] == 2 and record["points_per_side"] == 3
    image, points = batches[0]
    assert image.shape == (1, 3, 256, 256) and points.shape == (9, 2)
    # segment-anything's grid (cell centres) on the 8x8 image resized to 256x256
    expected = torch.tensor([256 / 6, 128.0, 5 * 256 / 6])
    assert torch.allclose(points[:, 0].reshape(3, 3)[0], expected) and torch.allclose(points[::3, 1], expected)
    assert record["sha256"] != _build_task(cfg, ["task.calib_points_per_side=4"]).calibration()[1]["sha256"]


def test_config_branch_is_the_segmentation_model_of_its_config(demo_scenes, monkeypatch):
    """The branch alone scores exactly what the semantic_segmentation task gives that model on the same scenes;
    with no masks the vote changes nothing."""
    import ptqvision.tasks.sam_semantic as mod
    from ptqvision.models import build_model
    from ptqvision.runner import build_preprocess
    from ptqvision.tasks import build_task

    monkeypatch.chdir(ROOT)
    task = _build_task(DEMO.format("rtn"), _demo_options(demo_scenes))
    branch = task.describe_data()["protocol"]["quantized"]["semantic_branch"]
    assert (branch["kind"], branch["quantized"], branch["model"]) == ("full-precision model", False, "seg_shapes_net")
    assert branch["weights_sha256"] == SEG_WEIGHTS_SHA256 and branch["preprocess"]["resize"] == [128, 128]
    monkeypatch.setattr(mod, "mask_generator", lambda model, settings: FixedMasks([[]] * 3))
    m = task.evaluator(torch.device("cpu"), progress=False).evaluate(torch.nn.Identity())

    cfg, _ = load_config(SEG_RTN, _demo_options(demo_scenes))
    model, pre = build_model(cfg["model"])
    seg = build_task(cfg, build_preprocess(cfg, pre)).evaluator(torch.device("cpu"), progress=False).evaluate(model)
    assert m["branch_mIoU"] == m["mIoU"] == seg["mIoU"] and m["aAcc"] == seg["aAcc"] and seg["num_images"] == 3
    assert m["per_class"] == seg["per_class"] and seg["mIoU"] > 20  # the demo model (background alone: about 13)


def test_quantized_branch_is_rebuilt_from_its_checkpoint(demo_scenes, tmp_path, monkeypatch, capsys):
    import ptqvision.tasks.sam_semantic as mod

    monkeypatch.chdir(ROOT)
    work = tmp_path / "seg_rtn"
    assert quant_cli.main([SEG_RTN, "--work-dir", str(work), "--cfg-options", *_demo_options(demo_scenes),
                           "eval.fp=False"]) == 0
    seg = json.loads((work / "results.json").read_text())["metrics"]["quant"]
    capsys.readouterr()
    spec = f"task.semantic_branch=dict(config='{SEG_RTN}', checkpoint='{work}/quantized.pth')"
    task = _build_task(DEMO.format("rtn"), _demo_options(demo_scenes) + [spec])
    branch = task.describe_data()["protocol"]["quantized"]["semantic_branch"]
    assert (branch["kind"], branch["quantized"], branch["method"], branch["w_bits"], branch["a_bits"]) == \
        ("quantized model", True, "rtn", 4, 4)
    assert len(branch["checkpoint_sha256"]) == 64
    monkeypatch.setattr(mod, "mask_generator", lambda model, settings: FixedMasks([[]] * 3))
    m = task.evaluator(torch.device("cpu"), progress=False).evaluate(torch.nn.Identity())
    assert m["branch_mIoU"] == m["mIoU"] == seg["mIoU"]  # the quantized branch reproduces its own run


# ------------------------------------------------------------------------------------------------- end to end
def test_ptq4sam_end_to_end_on_demo_scenes_and_test_py_reproduces(demo_scenes, tmp_path, monkeypatch, capsys):
    """The demo's SAM and branch on 3 scenes with 4x4 points (segment-anything's automatic mask generator), ptq4sam
    W4A4 with 2 calibration images of 2x2 points and 2 iterations per unit. The filters are off (thresholds 0): the
    shipped small SAM was trained with box prompts and one mask slot, so its point-prompted masks pass none."""
    monkeypatch.chdir(ROOT)
    work = tmp_path / "work"
    options = _demo_options(demo_scenes) + ["task.mask_generator.points_per_side=4", "task.calib_points_per_side=2",
                                            "task.mask_generator.pred_iou_thresh=0.0",
                                            "task.mask_generator.stability_score_thresh=0.0", "recon.iters=2"]
    assert quant_cli.main([DEMO.format("ptq4sam"), "--work-dir", str(work), "--cfg-options", *options]) == 0
    assert "mIoU" in capsys.readouterr().out
    r = json.loads((work / "results.json").read_text())
    assert (r["task"], r["method"], r["model"], r["w_bits"], r["a_bits"]) == ("sam_semantic", "ptq4sam", "sam_tiny", 4, 4)
    fp, q = r["metrics"]["fp"], r["metrics"]["quant"]
    for m in (fp, q):
        assert list(m["per_class"]) == CLASSES and m["num_images"] == 3 and 0 <= m["mIoU"] <= 100
    assert fp["masks_per_image"] > 0  # the small SAM's masks pass the demo's filters
    # only SAM is quantized: the branch's own scores are the same for both
    assert fp["branch_mIoU"] == q["branch_mIoU"] and fp["branch_per_class"] == q["branch_per_class"]
    proto = r["data"]["protocol"]
    assert (proto["num_classes"], proto["ignore_index"], proto["reduce_zero_label"]) == (7, 255, False)
    assert proto["mask_generator"]["points_per_side"] == 4 and proto["mask_generator"]["points_per_batch"] == 64
    assert proto["quantized"]["semantic_branch"]["kind"] == "full-precision model"
    assert "quantized SAM" in proto["quantized"]["sam"] and "Semantic Segment Anything" in proto["pipeline"]
    assert r["data"]["val"]["num_images"] == 3 and len(r["data"]["val"]["files_sha256"]) == 64
    assert (r["calib"]["num_samples"], r["calib"]["points_per_side"]) == (2, 2) and len(r["calib"]["sha256"]) == 64
    assert r["reconstruction"]["units"] == 18  # 4 encoder blocks x 2, the neck, 2 decoder layers x 4, the final attn
    assert len(r["calibration"]["bimodal_integration"]) == 3 and r["calibration"]["softmax_tau"]
    assert "synthetic" in r["note"]
    assert test_cli.main([DEMO.format("ptq4sam"), str(work / "quantized.pth"), "--cfg-options", *options]) == 0
    assert "reproduced exactly" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kind,message", [
    ("no_folder", "task.semantic_branch.folder not found: {root}/nowhere"),
    ("no_file", "task.semantic_branch.folder: no prediction {root}/pred/b.png for image {root}/images/b.png"),
    ("index", "prediction {root}/pred/b.png: class index 9 out of range for 7 classes (1 pixels)"),
    ("size", "prediction {root}/pred/b.png is 8x9 (HxW) but its label map {root}/labels/b.png is 8x8"),
    ("rgb", "prediction {root}/pred/b.png has mode RGB: expected one class index per pixel, not colours"),
])
def test_bad_predictions_give_one_line_errors_naming_the_file(hand_set, tmp_path, capsys, kind, message):
    root, cfg = hand_set
    options = []
    if kind == "no_folder":
        options = [f"task.semantic_branch=dict(folder='{root}/nowhere')"]
    elif kind == "no_file":
        os.unlink(root / "pred" / "b.png")
    elif kind == "index":
        bad = np.zeros((8, 8))
        bad[2, 5] = 9
        _png(str(root / "pred" / "b.png"), bad)
    elif kind == "size":
        _png(str(root / "pred" / "b.png"), np.zeros((8, 9)))
    else:
        _png(str(root / "pred" / "b.png"), np.zeros((8, 8, 3)), "RGB")
    work = tmp_path / "w"
    assert quant_cli.main([cfg, "--work-dir", str(work), *(["--cfg-options", *options] if options else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == "error: " + message.format(root=root)
    assert not (work / "results.json").exists()


@pytest.mark.parametrize("spec,message", [
    ("dict(foldr='x')", "task.semantic_branch must be one of dict(config=...), dict(config=..., checkpoint=...), "
                        "dict(folder=...)"),
    ("dict(config='configs/demo/sam_shapes_rtn_w4a4.py')", "is a coco_instance config, not semantic_segmentation"),
    ("dict(config='configs/demo/seg_shapes_rtn_w4a4.py', checkpoint='nowhere.pth')",
     "task.semantic_branch.checkpoint not found: nowhere.pth"),
    ("None", "task.semantic_branch is required"),
])
def test_bad_branch_specs_are_refused(hand_set, monkeypatch, spec, message):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError if "checkpoint not found" not in message else DataError) as info:
        _build_task(hand_set[1], [f"task.semantic_branch={spec}"])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_branch_with_another_label_set_is_refused(hand_set, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="has 7 classes, the task 8"):
        _build_task(hand_set[1], ["task.num_classes=8", "task.class_names=None",
                                  f"task.semantic_branch=dict(config='{SEG_RTN}')"])


# ------------------------------------------------------------------------------------------------- configs
ADE20K_CHECKPOINTS = {"b": "sam_vit_b_01ec64.pth", "l": "sam_vit_l_0b3195.pth", "h": "sam_vit_h_4b8939.pth"}


def test_ade20k_configs_cover_the_table_and_resolve():
    """configs/sam_semantic: SAM-B/L/H x W4A4/W6A6 x ptq4sam, QDrop, RTN on ADE20K with its label protocol, the
    paper's calibration and reconstruction settings, and a semantic branch config that resolves."""
    ade, _ = load_config(os.path.join(ROOT, "configs", "sam_semantic", "semantic_branch", "deeplabv3_resnet50_ade20k.py"))
    assert (ade["task"]["type"], ade["task"]["num_classes"], ade["model"]["num_classes"]) == \
        ("semantic_segmentation", 150, 150)
    assert ade["task"]["reduce_zero_label"] is True and ade["data"]["val"]["type"] == "ade20k"
    names = ade["task"]["class_names"]
    assert len(names) == 150 and names[0] == "wall" and names[-1] == "flag"
    found = sorted(p for p in os.listdir(os.path.join(ROOT, "configs", "sam_semantic")) if p.endswith(".py"))
    assert len(found) == 18
    for size in "blh":
        for bits in (4, 6):
            for suffix, method in (("", "ptq4sam"), ("_qdrop", "qdrop"), ("_rtn", "rtn")):
                name = f"sam_vit_{size}_ade20k_w{bits}a{bits}{suffix}.py"
                assert name in found
                cfg, _ = load_config(os.path.join(ROOT, "configs", "sam_semantic", name))
                t = cfg["task"]
                assert (cfg["model"]["name"], cfg["method"]["type"]) == (f"sam_vit_{size}", method)
                assert cfg["model"]["weights"] == f"checkpoints/{ADE20K_CHECKPOINTS[size]}"
                assert (cfg["quant"]["w_bits"], cfg["quant"]["a_bits"]) == (bits, bits)
                assert (t["type"], t["num_classes"], t["ignore_index"], t["reduce_zero_label"]) == \
                    ("sam_semantic", 150, 255, True)
                assert t["class_names"] == names
                assert t["semantic_branch"] == {"config": "configs/sam_semantic/semantic_branch/deeplabv3_resnet50_ade20k.py"}
                assert t["mask_generator"] == MaskGeneratorSettings().as_dict()  # segment-anything's defaults
                for split, folder in (("calib", "training"), ("val", "validation")):
                    assert cfg["data"][split] == {"type": "ade20k", "root": "data/ade/ADEChallengeData2016",
                                                  "split": folder, "list_file": None}
                assert (cfg["calib"]["num_samples"], cfg["calib"]["batch_size"], t["calib_points_per_side"]) == (32, 1, 8)
                assert (cfg["quant"]["softmax"], cfg["quant"]["bimodal_integration"]) == \
                    (("agq", True) if method == "ptq4sam" else ("uniform", False))
                if method != "rtn":
                    r = cfg["recon"]
                    assert (r["partition"], r["batch_size"], r["iters"], r["drop_prob"], r["joint"], r["pd_loss"]) == \
                        ("sub_block", 1, 20000, 0.5, True, False)
                    assert (r["round_lambda"], r["act_lr"], r["weight_lr"]) == (0.01, 4e-5, 1e-3)


def test_demo_configs_resolve_to_the_shipped_files(monkeypatch):
    monkeypatch.chdir(ROOT)
    for method in ("ptq4sam", "qdrop", "rtn"):
        cfg, _ = load_config(DEMO.format(method))
        t = cfg["task"]
        assert (t["type"], cfg["method"]["type"], cfg["model"]["name"]) == ("sam_semantic", method, "sam_tiny")
        assert "synthetic" in cfg["note"] and t["num_classes"] == 7
        for path in (cfg["model"]["weights"], cfg["data"]["val"]["list_file"], cfg["data"]["calib"]["list_file"],
                     t["class_names"], t["semantic_branch"]["config"]):
            assert os.path.isfile(path), path
        assert cfg["model"]["weights"] == "data/demo/sam_shapes/sam_tiny_shapes_points.pth"  # the point-prompt SAM
        assert cfg["data"]["calib"]["list_file"] == "data/demo/seg_shapes/calib.txt"
    with pytest.raises(ConfigError, match="unknown config key 'task.mask_generator.points_per_sid'"):
        load_config(DEMO.format("rtn"), ["task.mask_generator.points_per_sid=4"])
