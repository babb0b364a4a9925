"""Collect the seeded runs of the grid sweeps into one committed record of per-cell seed spreads.

    python benchmarks/cell_seeds.py                       # benchmarks/out/{recon,pdquant}_grid -> issue14/cell_seeds.json
    python benchmarks/cell_seeds.py --label "main (abc1234)" --sweeps benchmarks/out/recon_grid

Every finished job ``<model>_<bits>_<variant>_seed<s>`` of the sweeps (benchmarks/recon_grid.py and
benchmarks/pdquant_grid.py with --seeds) becomes the run ``<s>`` of the cell ``<model>/<bits>/<variant>``.
Runs already in the record are kept as they are (earlier sessions' runs are not in this checkout's sweeps),
so the record grows session by session; the spread of each cell is recomputed over all its runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seeds import fmt_spread, spread, sweep_seed_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_label() -> str:
    """Return 'main (<short commit>)' of the checkout, or 'unknown commit' outside git."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True)
        return f"main ({out.stdout.strip()})"
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def collect(record: dict, sweep_dirs: list[str], label: str) -> list[str]:
    """Add the seeded runs of ``sweep_dirs`` that ``record`` lacks; return the keys ``<cell>/<seed>`` added."""
    cells = record.setdefault("cells", {})
    added = []
    for sweep in sweep_dirs:
        if not os.path.isfile(os.path.join(sweep, "status.json")):
            continue
        grid = os.path.basename(os.path.normpath(sweep))
        for key, run in sweep_seed_table(sweep).items():
            cell, seed = key.rsplit("/seed", 1)
            runs = cells.setdefault(cell, {}).setdefault("runs", {})
            if seed in runs:
                continue
            host = run["host"]
            runs[seed] = {"top1": run["top1"], "top5": run["top5"], "wall_s": run["time_s"],
                          "threads": run["threads"] or host.get("threads"),
                          "cpu_capability": host.get("cpu_capability"),
                          "run": f"{label}, benchmarks/{grid}.py through the sweep"}
            added.append(f"{cell}/{seed}")
    for cell, c in cells.items():
        seeds = sorted(c["runs"], key=lambda s: (s != "1005", int(s)))
        c["runs"] = {s: c["runs"][s] for s in seeds}
        c["top1"] = spread([c["runs"][s]["top1"] for s in seeds])
    record["cells"] = dict(sorted(cells.items()))
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", nargs="+", default=[os.path.join(ROOT, "benchmarks", "out", g)
                                                        for g in ("recon_grid", "pdquant_grid")])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "issue14", "cell_seeds.json"))
    parser.add_argument("--label", default=None, help="where the new runs ran (default: main (<HEAD>))")
    args = parser.parse_args()

    from ptqvision.utils.atomic import atomic_write_json

    record = {}
    if os.path.isfile(args.out):
        with open(args.out) as f:
            record = json.load(f)
    added = collect(record, args.sweeps, args.label or git_label())
    atomic_write_json(args.out, record)
    print("| cell | top-1 per seed | mean ± std (min–max, n) |\n|---|---|---|")
    for cell, c in record["cells"].items():
        per = " / ".join(f"{r['top1']:.2f}" for r in c["runs"].values())
        print(f"| {cell} | {per} | {fmt_spread(c['top1'])} |")
    print(f"\n{len(added)} run(s) added to {args.out}")


if __name__ == "__main__":
    main()
