"""Helpers shared by the benchmarks that repeat a cell over run seeds: the seed list, the spread of a set
of numbers, and what a run record needs to read its wall time honestly (threads, CPU time, load)."""
from __future__ import annotations

import math
import os
import re
import resource
from typing import Sequence

SEEDS = (1005, 1, 2, 3, 4)  # 1005: the papers' seed and every config's default


def loadavg() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (empty where /proc/loadavg is missing)."""
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return []


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """Return the user + system CPU seconds of this process (or of its waited-for children)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def threads() -> int:
    """Return OMP_NUM_THREADS as an integer (0 when unset)."""
    return int(os.environ.get("OMP_NUM_THREADS", "0") or 0)


def spread(values: Sequence[float]) -> dict:
    """Return n, mean, sample standard deviation (ddof 1; 0 for one value), min and max of ``values``."""
    n = len(values)
    if n == 0:
        return {"n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": round(mean, 3), "std": round(std, 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def fmt_spread(s: dict, digits: int = 2) -> str:
    """Return 'mean ± std (min–max, n)' for a :func:`spread` record."""
    if not s.get("n"):
        return "-"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, n={s['n']})"


def measured(fn, *args, **kwargs) -> tuple[object, dict]:
    """Return (fn(*args, **kwargs), a record of its wall and CPU seconds (this process and its waited-for
    children), the load average before and after, and the thread count)."""
    import time

    load0, t0 = loadavg(), time.time()
    cpu0 = cpu_seconds() + cpu_seconds(resource.RUSAGE_CHILDREN)
    out = fn(*args, **kwargs)
    cpu = cpu_seconds() + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    return out, {"wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu, 1), "threads": threads(),
                 "loadavg_start": load0, "loadavg_end": loadavg()}


def seed_key(key: str, seed: int) -> str:
    """Return the table key of one seed of a cell."""
    return f"{key}/seed{seed}"


def by_seed(table: dict) -> dict:
    """Return, for each cell with seeded runs in ``table`` (keys ``<cell>/seed<s>``), the seeds (1005 first),
    the per-seed top-1, the spread of top-1 and wall time, and the thread counts."""
    cells: dict[str, dict] = {}
    for k, v in table.items():
        if "/seed" in k:
            cell, seed = k.rsplit("/seed", 1)
            cells.setdefault(cell, {})[int(seed)] = v
    out = {}
    for cell, runs in sorted(cells.items()):
        seeds = sorted(runs, key=lambda s: (s != 1005, s))
        out[cell] = {"seeds": seeds, "top1_per_seed": [runs[s]["top1"] for s in seeds],
                     "top1": spread([runs[s]["top1"] for s in seeds]),
                     "time_s": spread([runs[s]["time_s"] for s in seeds]),
                     "threads": sorted({runs[s].get("threads", 0) for s in seeds})}
    return out


# -- the seeded cells of a sweep (benchmarks/recon_grid.py, benchmarks/pdquant_grid.py) --------------------
# A grid's cell ``<model>/<bits>/<variant>`` runs in the sweep's work dir ``<model>_<bits>_<variant>``; its run
# with seed s (``seed=<s>`` among its options) in ``<model>_<bits>_<variant>_seed<s>``, its own job.
SEEDED_JOB = re.compile(r"^(?P<model>.+)_(?P<bits>w\d+a\d+)_(?P<variant>.+)_seed(?P<seed>-?\d+)$")


def seeded_job(name: str, seed: int | None) -> str:
    """Return the sweep job (work dir) name of a cell ``<model>_<bits>_<variant>`` run with ``seed`` (None:
    the cell's own job, with the config's seed)."""
    return name if seed is None else f"{name}_seed{seed}"


def sweep_seed_table(sweep_dir: str) -> dict:
    """Return the finished seeded jobs of a sweep as :func:`by_seed` reads them: ``{<cell>/seed<s>: {top1,
    time_s (the job's wall seconds), threads, host (results.json's record of the machine)}}``."""
    from ptqvision.report import read_results
    from ptqvision.sweep import elapsed_s, read_status

    table = {}
    for name, rec in read_status(sweep_dir)["jobs"].items():
        m = SEEDED_JOB.match(name)
        res = read_results(os.path.join(sweep_dir, name, "results.json")) if m and rec.get("state") == "done" else None
        if res is None:
            continue
        wall = elapsed_s(rec)
        table[seed_key(f"{m['model']}/{m['bits']}/{m['variant']}", int(m["seed"]))] = {
            "top1": res["metrics"]["quant"]["top1"], "top5": res["metrics"]["quant"].get("top5"),
            "time_s": round(wall if wall is not None else res["time_s"]["total"], 1),
            "threads": rec.get("threads") or 0, "host": res.get("host") or {},
            "source": os.path.join(name, "results.json")}
    return table


def grid_cells(sweep_dir: str) -> tuple[list, list[str]]:
    """Return the report cells of a sweep without its seeded jobs (a seeded run is the same cell of the table
    as its cell's own run; their spread is in seeds.json) and the notes on its unfinished cells; no cells and
    the reason when the sweep has no finished run."""
    from ptqvision.errors import ReportError
    from ptqvision.report import load_cells

    try:
        cells, notes = load_cells([sweep_dir])
    except ReportError as exc:
        return [], [str(exc)]

    def seeded(path: str) -> bool:
        return SEEDED_JOB.match(os.path.basename(os.path.dirname(path))) is not None

    return ([c for c in cells if not seeded(c.source)],
            [n for n in notes if SEEDED_JOB.match(n.split(":", 1)[0]) is None])


def write_spreads(sweep_dir: str) -> dict:
    """Write the per-cell seed spread of a sweep's seeded jobs to ``<sweep_dir>/seeds.json`` (as
    :func:`by_seed` gives it), print it as a table and return it (nothing is written without seeded jobs)."""
    from ptqvision.utils.atomic import atomic_write_json

    spreads = by_seed(sweep_seed_table(sweep_dir))
    if spreads:
        atomic_write_json(os.path.join(sweep_dir, "seeds.json"), spreads)
        print("| cell | top-1 over seeds: mean ± std (min–max, n) | per seed | wall (s) | threads |\n|---|---|---|---|---|")
        for key, c in spreads.items():
            print(f"| {key} | {fmt_spread(c['top1'])} | {' / '.join(f'{v:.2f}' for v in c['top1_per_seed'])} | "
                  f"{fmt_spread(c['time_s'], 0)} | {', '.join(str(t) for t in c['threads'])} |")
        print(f"\nwritten to {os.path.join(sweep_dir, 'seeds.json')}\n")
    return spreads
