"""Test settings: one CPU thread, no hub access, ptqvision imported before torchvision."""
import contextlib
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ptqvision  # noqa: E402,F401  (installs the torchvision shim first)
import pytest  # noqa: E402
import torch  # noqa: E402

from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402

torch.set_num_threads(1)
tune_cpu_allocator()

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


@pytest.fixture
def repo_root() -> str:
    return ROOT


def train_quadrant_task(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.Tensor]:
    """Train ``model`` (3-channel input, 4 logits) to > 95 % on a synthetic 4-class task (a coloured patch in
    one quadrant of a 12×12 image); return it in eval mode with no gradients left, and 64 of its images.
    The data come from the global random stream, after the model's initialisation."""
    n = 512
    y = torch.randint(0, 4, (n,))
    x = torch.randn(n, 3, 12, 12) * 0.5
    for k, (i, j) in enumerate([(0, 0), (0, 6), (6, 0), (6, 6)]):
        x[y == k, :, i:i + 6, j:j + 6] += torch.tensor([1.0, 0.5, -0.5]).view(1, 3, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        idx = torch.randint(0, n, (64,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().zero_grad(set_to_none=True)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95
    return model, x[:64]


def build_rtn(model: torch.nn.Module, x: torch.Tensor, w_bits: int = 2, a_bits: int = 4) -> torch.nn.Module:
    """Return the quantized twin of ``model`` (stem and head at the same bits) calibrated on ``x``."""
    from ptqvision.nn import calibrate, quantize

    gm = quantize(model, dict(w_bits=w_bits, a_bits=a_bits, head_stem_8bit=False))
    calibrate(gm, list(x.split(32)), progress=False)
    return gm


@contextlib.contextmanager
def killed_after_units(n: int, error: type = KeyboardInterrupt):
    """Within the block, the reconstruction engine raises ``error`` when it starts its (n+1)-th unit (a run
    killed half-way)."""
    from ptqvision.recon.engine import Reconstructor

    calls, orig = [], Reconstructor._reconstruct

    def dying(self, *args):
        calls.append(1)
        if len(calls) > n:
            raise error
        return orig(self, *args)

    Reconstructor._reconstruct = dying
    try:
        yield
    finally:
        Reconstructor._reconstruct = orig


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    """Return a folder of random 40×48 images with list files: calib.txt (12) and val.txt (10), 4 labels."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    g = torch.Generator().manual_seed(0)
    for split, n in (("calib", 12), ("val", 10)):
        lines = []
        for i in range(n):
            arr = (torch.rand(40, 48, 3, generator=g) * 255).to(torch.uint8).numpy()
            name = f"{split}_{i}.png"
            Image.fromarray(arr).save(root / name)
            lines.append(f"{name} {i % 4}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def write_tiny_config(path, data_root, **extra) -> str:
    """Write a config of a random 4-class ResNet-18 on the tiny images (RTN W4A4, 8 calibration images),
    with ``extra`` top-level keys appended (later assignments win); return its path."""
    body = f"""
model = dict(type='torchvision', name='resnet18', weights='random', num_classes=4)
data = dict(calib=dict(root='{data_root}', list_file='{data_root}/calib.txt'),
            val=dict(root='{data_root}', list_file='{data_root}/val.txt'),
            preprocess=dict(resize=36, crop=32), batch_size=4)
calib = dict(num_samples=8, seed=3, batch_size=4)
quant = dict(w_bits=4, a_bits=4)
method = dict(type='rtn')
eval = dict(progress=False)
"""
    for key, value in extra.items():
        body += f"{key} = {value!r}\n"
    path.write_text(body)
    return str(path)
