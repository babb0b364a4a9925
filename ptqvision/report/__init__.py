"""Reports: results.json files of finished runs as a paper's table, beside its published numbers, and a plot.

    from ptqvision.report import make_report
    text = make_report(['work_dirs/qdrop'], papers=['qdrop'], out='work_dirs/qdrop/report.md')
"""
from __future__ import annotations

import os
from typing import Sequence

from ..errors import ReportError
from ..utils.atomic import atomic_write_text
from .cells import Cell, load_cells, main_metric, read_results
from .papers import Paper, available_papers, load_paper
from .plot import write_plot
from .table import KINDS, Table, build_table, to_csv, to_json, to_markdown

FORMATS = ("md", "csv", "json")


def render(tables: Sequence[Table], fmt: str = "md", notes: Sequence[str] = ()) -> str:
    """Return the tables in a format: ``md`` (the paper's layout), ``csv`` (one line per cell) or ``json``."""
    if fmt == "md":
        return "\n\n".join(to_markdown(t, notes if i == len(tables) - 1 else ()) for i, t in enumerate(tables)) + "\n"
    if fmt == "csv":
        return to_csv(tables)
    if fmt == "json":
        return to_json(tables, notes)
    raise ReportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def plot_paths(out: str, tables: Sequence[Table]) -> list[str]:
    """Return where the plots of a report written to ``out`` go: ``<out stem>.png`` for the first metric,
    ``<out stem>_<metric>.png`` for the others."""
    stem = os.path.splitext(out)[0]
    return [f"{stem}.png" if i == 0 else f"{stem}_{t.metric.replace('.', '_')}.png" for i, t in enumerate(tables)]


def make_report(inputs: Sequence[str] | None = None, cells: Sequence[Cell] | None = None, fmt: str = "md",
                metrics: Sequence[str] | None = None, papers: Sequence[str | Paper] = (), columns: str = "model",
                allow: Sequence[str] = (), out: str | None = None, plot: bool = True,
                notes: Sequence[str] = (), rows: Sequence[str] = (), decimals: int | None = None) -> str:
    """Build one table per metric from ``inputs`` (results files, work dirs, sweeps) or ready ``cells``
    (rows in the order of ``rows`` first, numbers with ``decimals`` digits: see :func:`build_table`);
    write it to ``out`` (and its plots beside it) when given; return the text."""
    if fmt not in FORMATS:
        raise ReportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    notes = list(notes)
    if cells is None:
        cells, found = load_cells(inputs or [])
        notes += found
    loaded = [p if isinstance(p, Paper) else load_paper(p) for p in papers]
    tables = [build_table(cells, m, columns, loaded, allow, rows, decimals) for m in (metrics or [None])]
    text = render(tables, fmt, notes)
    if out:
        atomic_write_text(out, text)
        if plot:
            for t, path in zip(tables, plot_paths(out, tables)):
                write_plot(t, path)
    return text


__all__ = ["FORMATS", "KINDS", "Cell", "Paper", "Table", "available_papers", "build_table", "load_cells",
           "load_paper", "main_metric", "make_report", "plot_paths", "read_results", "render", "write_plot"]
