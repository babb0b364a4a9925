"""Accuracy grid of the SAM semantic demo: FP, W8A8, W6A6, W4A4 × RTN, QDrop, PTQ4SAM (Semantic Segment Anything).

The models are **small models trained here on synthetic data**: the SAM is data/demo/sam_shapes's sam_tiny (trained
here on synthetic shapes by tools/make_sam_demo.py; not SAM), the semantic branch the demo's ShapesSegNet in full
precision (data/demo/seg_shapes, tools/make_seg_demo.py); their numbers say nothing about SAM or about real
segmentation benchmarks. Every cell is one run of ``tools/quant.py`` (a subprocess) on the method's demo config
(configs/demo/sam_shapes_semantic_<method>_w4a4.py: the demo budget of iterations and points) with the bits set by
``--cfg-options``; only SAM is quantized, the semantic branch is the same in every cell. Evaluation on the 64
seg_shapes validation scenes (8x8 point prompts per image, the masks voted on the branch's classes). The
full-precision row comes from the first cell; the branch-alone row is the same in every cell. A cell whose work dir
already holds a results.json made with the same resolved config and package sources is reused (``--force`` reruns).

Writes ``benchmarks/results/issue12/sam_semantic_grid.json`` (every cell's metrics, per-class IoU, times, the command
and the machine load) and prints two markdown tables (mIoU / mAcc / aAcc, and per-class IoU).

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/sam_semantic_grid.py
    OMP_NUM_THREADS=1 python benchmarks/sam_semantic_grid.py --cells 'ptq4sam_*' --list
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "benchmarks", "out", "sam_semantic_grid")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "issue12")
CONFIG = "configs/demo/sam_shapes_semantic_{}_w4a4.py"
BITS = ((8, 8), (6, 6), (4, 4))  # (weights, activations)
METHODS = {"rtn": "RTN", "qdrop": "QDrop", "ptq4sam": "PTQ4SAM"}
LABEL = ("small models trained here on synthetic data (SAM: sam_tiny of data/demo/sam_shapes, not SAM; semantic "
         "branch: ShapesSegNet of data/demo/seg_shapes, full precision), not SAM and not a real segmentation benchmark")
WEIGHTS = ("data/demo/sam_shapes/sam_tiny_shapes.pth", "data/demo/seg_shapes/seg_shapes_net.pth")


def cells() -> list[dict]:
    """Return the cells in run order (the first one also evaluates full precision)."""
    out = []
    for method in METHODS:
        for w, a in BITS:
            name = f"{method}_w{w}a{a}"
            opts = [f"quant.w_bits={w}", f"quant.a_bits={a}", "eval.progress=False", "device=cpu",
                    f"eval.fp={not out}"]
            out.append({"name": name, "method": method, "bits": f"{w}/{a}", "config": CONFIG.format(method),
                        "options": opts})
    return out


def source_hash() -> str:
    """Return a short SHA-256 of the package sources and the weights the cells read."""
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(os.path.join(ROOT, "ptqvision"))):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    h.update(name.encode() + f.read())
    for path in WEIGHTS:
        with open(os.path.join(ROOT, path), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def config_hash(cell: dict) -> str:
    """Return a short SHA-256 of the cell's resolved config (any change of a config file or its bases shows)."""
    from ptqvision.config import dump_config, load_config

    cfg, _ = load_config(os.path.join(ROOT, cell["config"]), cell["options"])
    return hashlib.sha256(dump_config(cfg).encode()).hexdigest()[:12]


def done(cell: dict, key: str) -> dict | None:
    """Return the cell's results.json if it was made with the same resolved config and sources, else None."""
    folder = os.path.join(OUT, cell["name"])
    try:
        with open(os.path.join(folder, "cell.json")) as f:
            spec = json.load(f)
        with open(os.path.join(folder, "results.json")) as f:
            res = json.load(f)
    except (OSError, ValueError):
        return None
    return res if spec.get("key") == key else None


def run_cell(cell: dict, key: str) -> dict:
    """Run one cell with tools/quant.py in a subprocess; return its results.json plus wall time and load."""
    from ptqvision.utils.io import atomic_write_json

    folder = os.path.join(OUT, cell["name"])
    os.makedirs(folder, exist_ok=True)
    cmd = [sys.executable, "tools/quant.py", cell["config"], "--work-dir", os.path.relpath(folder, ROOT),
           "--cfg-options", *cell["options"]]
    load_before = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"cell {cell['name']} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(folder, "results.json")) as f:
        res = json.load(f)
    res["grid"] = {"wall_s": round(wall, 1), "load_before": [round(x, 2) for x in load_before],
                   "load_after": [round(x, 2) for x in os.getloadavg()]}
    atomic_write_json(os.path.join(folder, "results.json"), res)
    atomic_write_json(os.path.join(folder, "cell.json"), {"config": cell["config"], "options": cell["options"],
                                                           "key": key})
    return res


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def tables(fp: dict, rows: list[tuple[dict, dict]]) -> str:
    """Return the markdown tables: metrics per cell, then per-class IoU per cell (and of the branch alone)."""
    lines = ["| SAM | W/A | mIoU | mAcc | aAcc | masks / image | time (s) |", "|---|---|---|---|---|---|---|",
             f"| semantic branch alone (no SAM) | - | {fp['branch_mIoU']:.2f} | | {fp['branch_aAcc']:.2f} | | |",
             f"| FP | 32/32 | {fp['mIoU']:.2f} | {fp['mAcc']:.2f} | {fp['aAcc']:.2f} | {fp['masks_per_image']:.1f} | |"]
    for cell, res in rows:
        q = res["metrics"]["quant"]
        lines.append(f"| {METHODS[cell['method']]} | {cell['bits']} | {q['mIoU']:.2f} | {q['mAcc']:.2f} "
                     f"| {q['aAcc']:.2f} | {q['masks_per_image']:.1f} | {res['time_s']['total']:.0f} |")
    names = list(fp["per_class"])
    lines += ["", "| SAM | W/A | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names),
              "| branch alone | - | " + " | ".join(fmt(fp["branch_per_class"][n]) for n in names) + " |",
              "| FP | 32/32 | " + " | ".join(fmt(fp["per_class"][n]) for n in names) + " |"]
    for cell, res in rows:
        pc = res["metrics"]["quant"]["per_class"]
        lines.append(f"| {METHODS[cell['method']]} | {cell['bits']} | "
                     + " | ".join(fmt(pc[n]) for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", nargs="+", help="fnmatch patterns of the cells to run (default all)")
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    p.add_argument("--force", action="store_true", help="rerun cells that are done")
    args = p.parse_args(argv)
    grid = cells()
    chosen = [c for c in grid if not args.cells or any(fnmatch.fnmatch(c["name"], pat) for pat in args.cells)]
    if args.list:
        for c in chosen:
            print(c["name"], c["config"], " ".join(c["options"]))
        return 0
    sources = source_hash()
    keys = {c["name"]: f"{sources}-{config_hash(c)}" for c in grid}
    rows = []
    for cell in chosen:
        res = None if args.force else done(cell, keys[cell["name"]])
        if res is None:
            print(f"running {cell['name']} ...", flush=True)
            res = run_cell(cell, keys[cell["name"]])
        q = res["metrics"]["quant"]
        print(f"{cell['name']}: mIoU {q['mIoU']:.2f} aAcc {q['aAcc']:.2f} ({res['time_s']['total']:.0f}s)", flush=True)
        rows.append((cell, res))
    first = done(grid[0], keys[grid[0]["name"]])
    if first is None or "fp" not in first["metrics"]:
        raise SystemExit(f"the full-precision row comes from cell {grid[0]['name']}: run it too")
    fp = first["metrics"]["fp"]
    from ptqvision.utils.io import atomic_write_json

    summary = {
        "label": LABEL,
        "command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?") + " python benchmarks/sam_semantic_grid.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "sources": sources, "fp": fp,
        "protocol": first["data"]["protocol"], "calib": first["calib"],
        "cells": {c["name"]: {"method": c["method"], "bits": c["bits"], "config": c["config"], "options": c["options"],
                              "quant": r["metrics"]["quant"], "time_s": r["time_s"], "grid": r.get("grid"),
                              "recon": {k: r["recon"][k] for k in ("iters", "batch_size", "weight_lr", "round_lambda",
                                                                   "act_lr", "drop_prob")}
                              if "recon" in r else None,
                              "softmax": r["quant"]["softmax"], "bimodal_integration": r["quant"]["bimodal_integration"]}
                  for c, r in rows},
        "versions": rows[0][1]["versions"] if rows else {},
    }
    os.makedirs(RESULTS, exist_ok=True)
    if not args.cells:
        atomic_write_json(os.path.join(RESULTS, "sam_semantic_grid.json"), summary)
    print(f"\n{LABEL}\n")
    print(tables(fp, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
