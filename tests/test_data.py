"""Tests for ptqvision.data: dataset parsing, errors, calibration sampling, transforms, loaders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

import ptqvision  # noqa: F401  (before torchvision)
from ptqvision.data import (
    DEFAULT_PREPROCESS,
    ClassificationDataset,
    build_loader,
    build_transform,
    sample_calibration,
)
from ptqvision.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _image(path: Path, size=(40, 30), color=(255, 0, 0), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 128).save(path)
    return path


def _assert_one_line_naming(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    _image(root / "cat" / "a.jpg")
    _image(root / "cat" / "b.PNG")
    (root / "cat" / "notes.txt").write_text("not an image")
    _image(root / "ant" / "x.JPEG", mode="L")
    _image(root / "ant" / "sub" / "y.webp")
    _image(root / "dog" / "z.bmp")
    return root


@pytest.fixture
def list_tree(tmp_path: Path) -> Path:
    """root/images/{0..11}.png, labels = index % 3."""
    root = tmp_path / "listed"
    for i in range(12):
        _image(root / "images" / f"img{i:02d}.png", color=(i * 20, 0, 0))
    return root


def _write_list(root: Path, lines: list[str], name: str = "labels.txt") -> Path:
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- parsing


def test_image_folder_classes_sorted_and_extensions(folder_tree: Path) -> None:
    ds = ClassificationDataset(str(folder_tree))
    assert ds.classes == ["ant", "cat", "dog"]
    rel = [(os.path.relpath(p, folder_tree).replace(os.sep, "/"), y) for p, y in ds.samples]
    assert rel == [("ant/x.JPEG", 0), ("ant/sub/y.webp", 0), ("cat/a.jpg", 1), ("cat/b.PNG", 1), ("dog/z.bmp", 2)]
    assert all(os.path.isabs(p) for p, _ in ds.samples)
    img, label = ds[0]  # grayscale file comes back as RGB
    assert isinstance(img, Image.Image) and img.mode == "RGB" and label == 0


def test_list_file_comma_whitespace_comments_and_images_subfolder(list_tree: Path) -> None:
    _image(list_tree / "top.png")  # directly under root
    lst = _write_list(
        list_tree,
        ["# header comment", "", "img00.png, 5", "img01.png\t7", "  img02.png   9  ", "top.png,0", "   # indented comment"],
    )
    ds = ClassificationDataset(str(list_tree), str(lst))
    assert [(Path(p).relative_to(list_tree).as_posix(), y) for p, y in ds.samples] == [
        ("images/img00.png", 5),
        ("images/img01.png", 7),
        ("images/img02.png", 9),
        ("top.png", 0),
    ]
    assert ds[1][1] == 7


def test_getitem_applies_transform(list_tree: Path) -> None:
    lst = _write_list(list_tree, ["img03.png 2"])
    ds = ClassificationDataset(str(list_tree), str(lst), transform=lambda im: im.size)
    assert ds[0] == ((40, 30), 2)


# ---------------------------------------------------------------- errors


def test_error_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as exc:
        ClassificationDataset(str(missing))
    _assert_one_line_naming(exc, str(missing))


def test_error_missing_list_file(list_tree: Path) -> None:
    missing = list_tree / "absent.txt"
    with pytest.raises(DataError) as exc:
        ClassificationDataset(str(list_tree), str(missing))
    _assert_one_line_naming(exc, str(missing))


@pytest.mark.parametrize("bad", ["img00.png", "img00.png, cat", "img00.png -1", ", 3"])
def test_error_malformed_line_names_line_number(list_tree: Path, bad: str) -> None:
    lst = _write_list(list_tree, ["# c", "img01.png 1", bad])
    with pytest.raises(DataError) as exc:
        ClassificationDataset(str(list_tree), str(lst))
    _assert_one_line_naming(exc, f"{lst}:3")


def test_error_missing_image_reported_with_count(list_tree: Path) -> None:
    lst = _write_list(list_tree, ["img00.png 0", "ghost1.png 1", "ghost2.png 2"])
    with pytest.raises(DataError) as exc:
        ClassificationDataset(str(list_tree), str(lst))
    _assert_one_line_naming(exc, f"{lst}:2", str(list_tree / "ghost1.png"), "1 more missing")


def test_error_empty_list_and_empty_folder(tmp_path: Path, list_tree: Path) -> None:
    lst = _write_list(list_tree, ["# only comments", ""])
    with pytest.raises(DataError) as exc:
        ClassificationDataset(str(list_tree), str(lst))
    _assert_one_line_naming(exc, str(lst), "empty")
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DataError) as exc:
        ClassificationDataset(str(empty))
    _assert_one_line_naming(exc, str(empty), "empty")


# ---------------------------------------------------------------- calibration sampling


def test_calibration_same_seed_same_files(list_tree: Path) -> None:
    lst = _write_list(list_tree, [f"img{i:02d}.png {i % 3}" for i in range(12)])
    ds = ClassificationDataset(str(list_tree), str(lst))
    sub_a, rec_a = sample_calibration(ds, 5, seed=3)
    sub_b, rec_b = sample_calibration(ClassificationDataset(str(list_tree), str(lst)), 5, seed=3)
    assert rec_a == rec_b
    assert list(sub_a.indices) == list(sub_b.indices)
    assert len(set(sub_a.indices)) == 5 == len(sub_a)
    assert rec_a["num_samples"] == 5 and rec_a["seed"] == 3
    assert len(rec_a["sha256"]) == 64
    assert all(name.startswith("images/img") for name in rec_a["files_head"])
    assert rec_a["files_head"] == sorted(rec_a["files_head"])


def test_calibration_hash_is_of_relative_paths(list_tree: Path) -> None:
    import hashlib

    lst = _write_list(list_tree, [f"img{i:02d}.png 0" for i in range(12)])
    ds = ClassificationDataset(str(list_tree), str(lst))
    sub, rec = sample_calibration(ds, 12, seed=0)
    expected = "\n".join(f"images/img{i:02d}.png" for i in range(12))
    assert rec["sha256"] == hashlib.sha256(expected.encode()).hexdigest()
    assert rec["files_head"] == [f"images/img{i:02d}.png" for i in range(5)]


def test_calibration_different_seed_different_files(list_tree: Path) -> None:
    lst = _write_list(list_tree, [f"img{i:02d}.png 0" for i in range(12)])
    ds = ClassificationDataset(str(list_tree), str(lst))
    sub_a, rec_a = sample_calibration(ds, 4, seed=0)
    sub_b, rec_b = sample_calibration(ds, 4, seed=1)
    assert set(sub_a.indices) != set(sub_b.indices)
    assert rec_a["sha256"] != rec_b["sha256"]


def test_calibration_independent_of_list_order(list_tree: Path) -> None:
    lines = [f"img{i:02d}.png {i % 3}" for i in range(12)]
    ds_fwd = ClassificationDataset(str(list_tree), str(_write_list(list_tree, lines, "fwd.txt")))
    shuffled = [lines[i] for i in (7, 2, 11, 0, 5, 9, 1, 3, 10, 4, 8, 6)]
    ds_shuf = ClassificationDataset(str(list_tree), str(_write_list(list_tree, shuffled, "shuf.txt")))
    sub_f, rec_f = sample_calibration(ds_fwd, 6, seed=42)
    sub_s, rec_s = sample_calibration(ds_shuf, 6, seed=42)
    assert rec_f == rec_s
    # Same files and labels, in the same (path) order, although the dataset indices differ.
    assert [ds_fwd.samples[i] for i in sub_f.indices] == [ds_shuf.samples[i] for i in sub_s.indices]
    assert list(sub_f.indices) != list(sub_s.indices)


@pytest.mark.parametrize("n", [0, 13, -1])
def test_calibration_bad_size(list_tree: Path, n: int) -> None:
    lst = _write_list(list_tree, [f"img{i:02d}.png 0" for i in range(12)])
    ds = ClassificationDataset(str(list_tree), str(lst))
    with pytest.raises(DataError) as exc:
        sample_calibration(ds, n, seed=0)
    _assert_one_line_naming(exc, "1..12", str(list_tree))


# ---------------------------------------------------------------- transforms and loaders


def test_transform_shape_and_normalisation(tmp_path: Path) -> None:
    img = Image.open(_image(tmp_path / "w.png", size=(300, 200), color=(255, 255, 255)))
    out = build_transform(DEFAULT_PREPROCESS)(img)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    expected = [(1 - m) / s for m, s in zip(DEFAULT_PREPROCESS["mean"], DEFAULT_PREPROCESS["std"])]
    assert torch.allclose(out.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-5)
    # (x - 127) / 128 on the 0..255 scale expressed on the 0..1 scale; interpolation defaults to bilinear.
    small = build_transform(dict(resize=40, crop=(32, 24), mean=(127 / 255,) * 3, std=(128 / 255,) * 3))(img)
    assert small.shape == (3, 32, 24)
    assert torch.allclose(small, torch.full_like(small, 128 / 128), atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        dict(DEFAULT_PREPROCESS, interpolation="lanczos3"),
        dict(DEFAULT_PREPROCESS, resise=256),
        {k: v for k, v in DEFAULT_PREPROCESS.items() if k != "crop"},
        dict(DEFAULT_PREPROCESS, crop=0),
        dict(DEFAULT_PREPROCESS, std=(0.2, 0.0, 0.2)),
    ],
)
def test_transform_rejects_bad_config(bad: dict) -> None:
    with pytest.raises(ConfigError) as exc:
        build_transform(bad)
    assert "\n" not in str(exc.value)


def test_loader_keeps_order_and_last_batch(list_tree: Path) -> None:
    lst = _write_list(list_tree, [f"img{i:02d}.png {i}" for i in range(12)])
    tf = build_transform(dict(DEFAULT_PREPROCESS, resize=16, crop=8))
    loader = build_loader(ClassificationDataset(str(list_tree), str(lst), tf), batch_size=5)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(12))
    assert batches[0][0].shape == (5, 3, 8, 8)
    assert loader.pin_memory is False and loader.drop_last is False


def test_demo_val_split_loads() -> None:
    root = REPO_ROOT / "data" / "demo" / "val"
    if not (root / "labels.txt").is_file():
        pytest.skip("data/demo not generated (run tools/make_demo_data.py)")
    ds = ClassificationDataset(str(root), str(root / "labels.txt"), build_transform(DEFAULT_PREPROCESS))
    assert len(ds) == 300
    assert all(0 <= y < 1000 for _, y in ds.samples)
    x, y = ds[0]
    assert x.shape == (3, 224, 224) and y == 472  # ILSVRC2012_val_00000347.JPEG
    calib = ClassificationDataset(str(root.parent / "calib"), str(root.parent / "calib" / "labels.txt"))
    assert len(calib) == 128 and len({y for _, y in calib.samples}) == 128
