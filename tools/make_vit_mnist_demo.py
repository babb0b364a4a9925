#!/usr/bin/env python
"""Create data/demo/vit_mnist/: the ViT4MNIST float state dict (timm layout) and the 5000 MNIST digits.

Converts ``<shared>/vit_mnist_tiny/vit4mnist_dynquant_torchscript.pt`` (TorchScript, dynamic int8 Linear
layers) into a plain float state dict for ``ptqvision.models.vit_mnist.build_vit_mnist_tiny()`` saved as
``<out>/vit_mnist_tiny.pth``, copies ``<shared>/mnist_5k/mnist_5k.csv.gz`` byte for byte, and prints the
SHA-256 of both files, the accuracy of the original TorchScript (batch-1 loop) and of the converted
model (batched) on all digits, and the largest absolute logit difference between the two.

Usage: python tools/make_vit_mnist_demo.py [--shared DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "data" / "demo" / "vit_mnist"
TORCHSCRIPT = Path("vit_mnist_tiny") / "vit4mnist_dynquant_torchscript.pt"
CSV = Path("mnist_5k") / "mnist_5k.csv.gz"
# sha256[:16] of the sources as stated in shared/data/README.md
SOURCE_SHA_PREFIX = {TORCHSCRIPT: "61be9bbac400c801", CSV: "846f6cad587fea38"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default {DEFAULT_SHARED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args()

    import ptqvision  # noqa: F401  (installs the torchvision CPU shim before timm is imported)
    import torch

    from ptqvision.data.mnist import MnistCsvDataset
    from ptqvision.models.vit_mnist import build_vit_mnist_tiny, convert_torchscript

    for rel, prefix in SOURCE_SHA_PREFIX.items():
        src = args.shared / rel
        if not src.is_file():
            sys.exit(f"error: source file not found: {src}")
        digest = sha256(src)
        if not digest.startswith(prefix):
            sys.exit(f"error: {src} has sha256 {digest}, expected {prefix}... (shared/data/README.md)")

    args.out.mkdir(parents=True, exist_ok=True)
    weights_out = args.out / "vit_mnist_tiny.pth"
    csv_out = args.out / "mnist_5k.csv.gz"
    state = convert_torchscript(str(args.shared / TORCHSCRIPT))
    torch.save({k: v.detach().clone().contiguous() for k, v in state.items()}, weights_out)
    shutil.copyfile(args.shared / CSV, csv_out)
    print(f"wrote {weights_out.relative_to(REPO_ROOT) if weights_out.is_relative_to(REPO_ROOT) else weights_out} "
          f"({weights_out.stat().st_size} bytes) sha256 {sha256(weights_out)}")
    print(f"wrote {csv_out.relative_to(REPO_ROOT) if csv_out.is_relative_to(REPO_ROOT) else csv_out} "
          f"({csv_out.stat().st_size} bytes) sha256 {sha256(csv_out)}")

    # Evaluate from the written files, as a user would load them.
    data = MnistCsvDataset(str(csv_out))
    images, labels = data.images, torch.tensor(data.labels)
    model = build_vit_mnist_tiny()
    model.load_state_dict(torch.load(weights_out, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        converted = torch.cat([model(images[i:i + 500]) for i in range(0, len(images), 500)])
    t1 = time.perf_counter()
    original_model = torch.jit.load(str(args.shared / TORCHSCRIPT), map_location="cpu")  # trusted source file
    with torch.no_grad():
        original = torch.cat([original_model(images[i:i + 1]) for i in range(len(images))])
    t2 = time.perf_counter()
    acc_orig = (original.argmax(1) == labels).float().mean().item() * 100
    acc_conv = (converted.argmax(1) == labels).float().mean().item() * 100
    agree = (original.argmax(1) == converted.argmax(1)).float().mean().item() * 100
    diff = (original - converted).abs()
    print(f"digits: {len(labels)}")
    print(f"accuracy TorchScript original (int8 dynamic linears, batch 1): {acc_orig:.2f}% ({t2 - t1:.1f} s)")
    print(f"accuracy converted timm model (float32, batched):              {acc_conv:.2f}% ({t1 - t0:.1f} s)")
    print(f"top-1 agreement: {agree:.2f}%")
    print(f"max |logit difference|: {diff.max().item():.4f} (mean {diff.mean().item():.4f}; "
          f"logit range {converted.min().item():.2f}..{converted.max().item():.2f})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
