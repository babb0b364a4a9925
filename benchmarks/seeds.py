"""Helpers shared by the benchmarks that repeat a cell over run seeds: the seed list, the spread of a set
of numbers, and what a run record needs to read its wall time honestly (threads, CPU time, load)."""
from __future__ import annotations

import math
import os
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
