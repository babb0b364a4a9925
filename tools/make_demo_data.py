#!/usr/bin/env python
"""Create data/demo/{calib,val}: small, reproducible subsets of the shared ImageNet folders.

Selection rule (no randomness): sort the source's labels.txt entries by file name, keep the
entries at positions floor(i * N / n) for i = 0..n-1 (evenly spaced over the sorted list), copy
those image files byte for byte into ``<out>/<split>/images/`` and write ``<out>/<split>/labels.txt``
as ``filename label`` lines. The source labels.txt files are checked against the SHA-256 recorded
in shared/data/README.md, so a changed source is detected instead of silently giving other files.

Usage: python tools/make_demo_data.py [--shared DIR] [--out DIR] [--num-calib 128] [--num-val 300]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "data" / "demo"

# (split, source folder, sha256 of the source labels.txt as stated in shared/data/README.md)
SOURCES = {
    "calib": ("imagenet_sample_1000_r256", "a396402ab0400389609a2d4fa2166bca89433355dc570212e8ed38640c77bb56"),
    "val": ("imagenet_val_subset_1300", "8db4a4f62f3dc9a412d58fa2df2c41e4f938c4e2f1fea7fcf7002ae25816d986"),
}


def read_labels(path: Path) -> list[tuple[str, int]]:
    """Return ``(filename, label)`` pairs of a ``filename, label`` file, sorted by file name."""
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, label = line.rpartition(",") if "," in line else line.rpartition(" ")
        if not sep or not name.strip():
            sys.exit(f"error: {path}:{lineno}: malformed line {line!r}")
        entries.append((name.strip(), int(label)))
    return sorted(entries)


def select(entries: list, n: int) -> list:
    """Return ``n`` entries evenly spaced over ``entries`` (positions floor(i * N / n))."""
    if not 1 <= n <= len(entries):
        sys.exit(f"error: cannot select {n} of {len(entries)} entries")
    return [entries[i * len(entries) // n] for i in range(n)]


def make_split(src: Path, dst: Path, n: int, expected_sha: str | None) -> tuple[int, int]:
    """Copy the selected images of ``src`` into ``dst``; return (number of files, bytes copied)."""
    labels_path = src / "labels.txt"
    if not labels_path.is_file():
        sys.exit(f"error: labels file not found: {labels_path}")
    digest = hashlib.sha256(labels_path.read_bytes()).hexdigest()
    if expected_sha is not None and digest != expected_sha:
        sys.exit(f"error: {labels_path} has sha256 {digest}, expected {expected_sha} (use --no-verify to skip)")
    entries = read_labels(labels_path)
    chosen = select(entries, n)
    images = dst / "images"
    images.mkdir(parents=True, exist_ok=True)
    keep = {name for name, _ in chosen}
    for stale in images.iterdir():  # leftovers of an earlier run with other settings
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    total = 0
    for name, _ in chosen:
        source = src / "images" / name
        if not source.is_file():
            sys.exit(f"error: image not found: {source}")
        shutil.copyfile(source, images / name)
        total += source.stat().st_size
    lines = [f"# {n} images from {src.name} (positions floor(i*{len(entries)}/{n}) of the name-sorted list), made by tools/make_demo_data.py"]
    lines += [f"{name} {label}" for name, label in chosen]
    (dst / "labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(chosen), total


def main(argv: list[str] | None = None) -> int:
    """Build both demo splits; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default {DEFAULT_SHARED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--num-calib", type=int, default=128)
    parser.add_argument("--num-val", type=int, default=300)
    parser.add_argument("--no-verify", action="store_true", help="skip the source labels.txt hash check")
    args = parser.parse_args(argv)
    counts = {"calib": args.num_calib, "val": args.num_val}
    for split, (folder, sha) in SOURCES.items():
        n_files, n_bytes = make_split(args.shared / folder, args.out / split, counts[split], None if args.no_verify else sha)
        print(f"{split}: {n_files} images, {n_bytes / 1e6:.2f} MB -> {os.path.relpath(args.out / split)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
