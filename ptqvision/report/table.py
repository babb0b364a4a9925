"""A paper-style table of cells: rows method × bits, columns models (or rows method × model, columns bits),
each cell the quantized metric and its drop from FP, the published number beside it.

What may stand side by side (refused otherwise, with the cells and the field named, unless the user
allows that kind of difference, which then marks the cells and notes the difference under the table):

- ``calib``: every cell of a table is calibrated on the same number of images, and on as many as the
  paper declares where a published number stands beside it;
- ``eval``: every cell has the same task and evaluation data (the task's record in results.json, e.g. the
  validation list and its size); the cells of one model the same preprocessing and the same FP value;
  and as many evaluation images as the paper declares;
- ``placement``: the cells of one model have the same placement, bit widths taken relative to the run's
  W/A bits (so W4A4 and W2A4 compare, an 8-bit stem output does not); and every ``quant.*`` setting a
  paper declares equals ours.

Cells of different models are not compared with each other's placement or preprocessing: they differ
by nature. Two results for the same cell are an error (report one of them).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import ReportError
from .cells import METHOD_NAMES, Cell, bits_name, display, main_metric
from .papers import Paper

KINDS = {"placement": "placement", "calib": "calibration size", "eval": "evaluation protocol"}
DASH = "–"
PERCENT = ("top1", "top5", "mIoU", "aAcc")  # the tasks' metrics in percent (segm_mAP* too)
MARK = "†"


def table_order(bits: tuple[int, int]) -> tuple[int, int]:
    """Sort key of bit settings as the papers' tables list them: W4A4, W2A4, W3A3, W4A2, W2A2."""
    return -(bits[0] + bits[1]), bits[0]


def plot_order(bits: tuple[int, int]) -> tuple[int, int]:
    """Sort key of bit settings on a plot's x axis, fewest bits first."""
    return bits[0] + bits[1], bits[0]


@dataclass
class Entry:
    """One cell of the table: ours (value, FP, the run) and the paper's (value, FP, which paper)."""

    value: float | None = None
    fp: float | None = None
    cell: Cell | None = None
    paper: float | None = None
    paper_fp: float | None = None
    paper_name: str | None = None
    marked: bool = False

    @property
    def drop(self) -> float | None:
        return self.value - self.fp if self.value is not None and self.fp is not None else None

    @property
    def paper_drop(self) -> float | None:
        return self.paper - self.paper_fp if self.paper is not None and self.paper_fp is not None else None

    @property
    def diff(self) -> float | None:
        return self.value - self.paper if self.value is not None and self.paper is not None else None


@dataclass
class Table:
    """A built table: ``entries[(label, model, bits)]``, the row labels, models and bit settings in order."""

    metric: str
    columns: str
    labels: list[str]
    models: list[str]
    bits: list[tuple[int, int]]
    entries: dict[tuple[str, str, tuple[int, int]], Entry]
    fp: dict[str, float | None]
    paper_fp: dict[str, float | None]
    papers: list[Paper]
    notes: list[str] = field(default_factory=list)
    has_drop: bool = True  # a full-precision value is known: FP row and drops are shown
    decimals: int = 2

    def rows(self) -> list[tuple]:
        """Return the row keys in order: (bits, label) with models as columns, (label, model) with bits."""
        if self.columns == "model":
            return [(b, lab) for b in self.bits for lab in self.labels
                    if any((lab, m, b) in self.entries for m in self.models)]
        return [(lab, m) for lab in self.labels for m in self.models
                if any((lab, m, b) in self.entries for b in self.bits)]


@dataclass
class _Mismatch:
    kind: str
    cells: list[Cell]
    detail: str
    paper: bool = False


def _first_difference(a: object, b: object, path: str = "") -> str | None:
    """Return 'path: a vs b' for the first place where two JSON-like values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path or 'value'}: {_short(a)} vs {_short(b)}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _placement_difference(a: Cell, b: Cell) -> str | None:
    """Return the first quantizer whose placement differs between two cells of one model, or None.

    Bit widths compare relative to each run's W/A bits: a quantizer at the run's bits in both (W4A4 and
    W2A4 runs of one model), or at the same fixed width in both (an 8-bit head; in a W8A8 run, 8 is both),
    is the same placement; an 8-bit stem output beside a 4-bit one in two W4A4 runs is not."""
    fields = ("name", "kind", "bits", "granularity", "symmetric", "observer", "type")
    rows_b = {r[0]: r for r in b.placement()}

    def run_bits(cell: Cell, kind: str) -> int:
        return cell.bits[0] if kind == "weight" else cell.bits[1]

    for r in a.placement():
        other = rows_b.pop(r[0], None)
        if other is None:
            return f"quantizer {r[0]} only in the first"
        for i in range(1, len(fields)):
            if r[i] == other[i] and i != 2:
                continue
            if i == 2:
                follows_a, follows_b = r[2] == run_bits(a, r[1]), other[2] == run_bits(b, other[1])
                if follows_a and follows_b or r[2] == other[2]:
                    continue  # both at their run's bits, or both at one fixed width
            return f"{r[0]} {fields[i]} {r[i]} vs {other[i]}"
    return f"quantizer {next(iter(rows_b))} only in the second" if rows_b else None


def _reference(cells: Sequence[Cell], key) -> Cell:
    """Return the cell whose ``key`` most cells share (the first such in order): the others are named."""
    counts: dict[str, int] = {}
    for c in cells:
        k = json.dumps(key(c), sort_keys=True, default=str)
        counts[k] = counts.get(k, 0) + 1
    best = max(counts.values())
    return next(c for c in cells if counts[json.dumps(key(c), sort_keys=True, default=str)] == best)


def _check(cells: Sequence[Cell], metric: str) -> list[_Mismatch]:
    """Return the protocol differences between cells that the table would put side by side, each against
    the value most of the compared cells share."""
    out: list[_Mismatch] = []
    calib = _reference(cells, lambda c: c.calib_size)
    evaluation = _reference(cells, lambda c: c.evaluation)
    for c in cells:
        if c.calib_size != calib.calib_size:
            out.append(_Mismatch("calib", [calib, c], f"calib.num_samples {calib.calib_size} vs {c.calib_size}"))
        diff = _first_difference(evaluation.evaluation, c.evaluation)
        if diff:
            out.append(_Mismatch("eval", [evaluation, c], diff))
    for model in dict.fromkeys(c.model for c in cells):
        same = [c for c in cells if c.model == model]
        pre = _reference(same, lambda c: c.preprocess)
        with_fp = [c for c in same if c.fp(metric) is not None]
        fp = _reference(with_fp, lambda c: c.fp(metric)) if with_fp else None
        for c in same:
            diff = _first_difference(pre.preprocess, c.preprocess)
            if diff:
                out.append(_Mismatch("eval", [pre, c], f"preprocess.{diff}"))
            if fp is not None and c.fp(metric) is not None and abs(fp.fp(metric) - c.fp(metric)) > 1e-9:
                out.append(_Mismatch("eval", [fp, c], f"FP {metric} {fp.fp(metric):.2f} vs {c.fp(metric):.2f}"))
        # pairwise: a W8A8 run agrees both with an 8-bit stem output and with one at the run's bits
        for i, c in enumerate(same):
            for ref in same[:i]:
                diff = _placement_difference(ref, c)
                if diff:
                    out.append(_Mismatch("placement", [ref, c], diff))
                    break
    return out


def _check_paper(cell: Cell, paper: Paper) -> list[_Mismatch]:
    """Return the differences between a cell's protocol and the one the paper declares."""
    p, out = paper.protocol, []
    task = cell.evaluation["task"]
    if task != p["task"]:
        out.append(_Mismatch("eval", [cell], f"task {task} vs {p['task']} in {paper.name}", True))
    if "calib_num_samples" in p and cell.calib_size != p["calib_num_samples"]:
        out.append(_Mismatch("calib", [cell], f"calib.num_samples {cell.calib_size} vs {p['calib_num_samples']} "
                                              f"in {paper.name}", True))
    n_val = cell.evaluation["data"].get("num_val_images")
    if "num_val_images" in p and n_val != p["num_val_images"]:
        out.append(_Mismatch("eval", [cell], f"{n_val} evaluation images vs {p['num_val_images']} in {paper.name} "
                                             f"({p.get('val', 'its evaluation set')})", True))
    quant = cell.results.get("quant", {})
    for key, value in p.get("quant", {}).items():
        if quant.get(key) != value:
            out.append(_Mismatch("placement", [cell], f"quant.{key} {_short(quant.get(key))} vs {_short(value)} "
                                                      f"in {paper.name}", True))
    return out


def build_table(cells: Sequence[Cell], metric: str | None = None, columns: str = "model",
                papers: Sequence[Paper] = (), allow: Iterable[str] = (), rows: Sequence[str] = (),
                decimals: int | None = None) -> Table:
    """Return the table of ``cells`` for ``metric`` (default: the task's main metric) with the papers'
    numbers beside them; raise ReportError when cells that would stand side by side differ in a kind of
    protocol that ``allow`` does not name (``placement``, ``calib``, ``eval``). Row labels come in the
    order of ``rows``, then the methods in the lineage's order, then other labels as they first appear;
    numbers have ``decimals`` digits (default 2, 1 for a dotted name such as ``time_s.total``)."""
    if not cells:
        raise ReportError("no results to report")
    if columns not in ("model", "bits"):
        raise ReportError(f"columns must be 'model' or 'bits', got {columns!r}")
    allow = set(allow)
    unknown = allow - set(KINDS) - {"all"}
    if unknown:
        raise ReportError(f"unknown mismatch kind {sorted(unknown)[0]!r}; one of {', '.join(KINDS)} or all")
    if "all" in allow:
        allow = set(KINDS)
    metric = metric or main_metric(cells[0].results)

    entries: dict[tuple[str, str, tuple[int, int]], Entry] = {}
    for c in cells:
        key = (c.label, c.model, c.bits)
        if key in entries:
            raise ReportError(f"two results for the same cell ({c.describe()}): {entries[key].cell.source} and "
                              f"{c.source}; report one of them")
        value = c.value(metric)
        if value is None:
            have = ", ".join(k for k, v in c.results["metrics"]["quant"].items() if isinstance(v, (int, float)))
            raise ReportError(f"{c.source} has no metric {metric!r} (it has {have})")
        entries[key] = Entry(value=value, cell=c)
    order = _lineage_order(list(dict.fromkeys(c.label for c in cells)), rows)
    mismatches = _check(sorted(cells, key=lambda c: (table_order(c.bits), order(c.label))), metric)

    models = list(dict.fromkeys(c.model for c in cells))
    fp = {m: next((c.fp(metric) for c in cells if c.model == m and c.fp(metric) is not None), None) for m in models}
    for (_, model, _), e in entries.items():
        e.fp = fp[model]
    labels = list(dict.fromkeys(c.label for c in cells))
    bits = sorted({c.bits for c in cells}, key=table_order)
    paper_models = list(dict.fromkeys(m for p in papers if p.metric == metric for m in p.fp))
    models.sort(key=lambda m: paper_models.index(m) if m in paper_models else len(paper_models))  # stable

    paper_fp: dict[str, float | None] = {m: None for m in models}
    used: list[Paper] = []
    for paper in papers:
        if paper.metric != metric:
            continue
        used.append(paper)
        for m in models:
            if m in paper.fp and paper_fp[m] is None:
                paper_fp[m] = float(paper.fp[m])
        for row in paper.results:
            b = (row["w_bits"], row["a_bits"])
            for m in models:
                value = paper.value(row["method"], m, b)
                if value is None or b not in bits:
                    continue  # only the cells of our table's models and bit settings
                e = entries.setdefault((row["method"], m, b), Entry(fp=fp[m]))
                if e.paper is not None and e.paper != value:
                    raise ReportError(f"{e.paper_name} and {paper.name} give different numbers for {m} "
                                      f"{display(row['method'])} {bits_name(b)} ({e.paper} vs {value}); pass one")
                e.paper, e.paper_fp, e.paper_name = value, paper.fp.get(m), paper.name
                if row["method"] not in labels:
                    labels.append(row["method"])  # a paper's row that we did not run: shown as the paper's only
                if e.cell is not None:
                    mismatches += _check_paper(e.cell, paper)

    labels = sorted(labels, key=_lineage_order(list(labels), rows))
    notes = _resolve(mismatches, allow, entries)
    has_drop = any(v is not None for v in list(fp.values()) + list(paper_fp.values()))
    decimals = decimals if decimals is not None else 1 if "." in metric else 2
    return Table(metric, columns, labels, models, bits, entries, fp, paper_fp, used, notes, has_drop, decimals)


def _lineage_order(labels: Sequence[str], first: Sequence[str] = ()):
    """Return a sort key of row labels: those of ``first`` in its order, the methods in the order of the
    lineage, then other labels (a sweep's own names) in the order of ``labels``."""
    known = list(METHOD_NAMES)

    def key(lab: str) -> tuple[int, int]:
        if lab in first:
            return 0, list(first).index(lab)
        return (1, known.index(lab)) if lab in known else (2, labels.index(lab))
    return key


def _resolve(mismatches: list[_Mismatch], allow: set[str], entries: dict) -> list[str]:
    """Raise on the first difference not allowed; return one note per allowed difference, and mark the
    cells it concerns."""
    refused = [m for m in mismatches if m.kind not in allow]
    if refused:
        m = refused[0]
        what = " and ".join(c.describe() for c in m.cells) + (" and the paper" if m.paper else "")
        more = f" ({len(refused) - 1} more differences)" if len(refused) > 1 else ""
        raise ReportError(f"refusing to put side by side {what}: {KINDS[m.kind]} differs ({m.detail}){more}; "
                          f"pass --allow-mismatch {m.kind} to show them with the difference noted")
    grouped: dict[tuple[str, str], list[Cell]] = {}
    for m in mismatches:
        marked = m.cells if m.paper else m.cells[1:]
        grouped.setdefault((m.kind, m.detail), []).extend(marked)
        for c in marked:
            entries[(c.label, c.model, c.bits)].marked = True
    notes = []
    for (kind, detail), cells in grouped.items():
        names = list(dict.fromkeys(c.describe() for c in cells))
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        notes.append(f"{MARK} {KINDS[kind]} differs: {detail} ({shown})")
    return notes


# -- rendering --------------------------------------------------------------------------------------------

def _num(value: float | None, t: Table, sign: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.{t.decimals}f}" if sign else f"{value:.{t.decimals}f}"


def _with_drop(value: float | None, drop: float | None, t: Table, marked: bool = False) -> str:
    if value is None:
        return DASH
    text = _num(value, t) + (f" ({_num(drop, t, True)})" if drop is not None else "")
    return text + (f" {MARK}" if marked else "")


def _cells_md(t: Table, e: Entry | None) -> list[str]:
    e = e or Entry()
    out = [_with_drop(e.value, e.drop, t, e.marked)]
    if t.papers:
        out += [_with_drop(e.paper, e.paper_drop, t), _num(e.diff, t, True)]
    return out


def _fp_md(t: Table, model: str) -> list[str]:
    ours, theirs = t.fp.get(model), t.paper_fp.get(model)
    out = [_num(ours, t)]
    if t.papers:
        out += [_num(theirs, t), _num(ours - theirs, t, True) if ours is not None and theirs is not None else DASH]
    return out


def title(t: Table) -> str:
    """Return the line that says what the table's cells are."""
    unit = " (%)" if t.metric in PERCENT or t.metric.startswith("segm_mAP") else ""
    what = "quantized (drop from FP)" if t.has_drop else "value"
    text = f"{t.metric}{unit}; cells: {what}"
    if t.papers:
        text += "; paper: " + "; ".join(p.cite() for p in t.papers) + "; Δ = ours − paper"
    return text


def to_markdown(t: Table, extra_notes: Sequence[str] = ()) -> str:
    """Return the table as markdown: a title line, the table, then its notes."""
    sub = ["", "paper", "Δ"] if t.papers else [""]
    if t.columns == "model":
        head = ["bits", "method"] + [f"{m} {s}".strip() for m in t.models for s in sub]
        lines = [_md_row(head), "|" + "---|" * len(head)]
        if t.has_drop:
            lines.append(_md_row(["FP", ""] + [x for m in t.models for x in _fp_md(t, m)]))
        for b, lab in t.rows():
            lines.append(_md_row([bits_name(b), display(lab)] +
                                 [x for m in t.models for x in _cells_md(t, t.entries.get((lab, m, b)))]))
    else:
        one = len(t.models) == 1
        fp_head = (["FP", "FP paper"] if t.papers else ["FP"]) if t.has_drop else []
        head = ["method"] + ([] if one else ["model"]) + fp_head + \
               [f"{bits_name(b)} {s}".strip() for b in t.bits for s in sub]
        lines = [_md_row(head), "|" + "---|" * len(head)]
        for lab, m in t.rows():
            fp = _fp_md(t, m)[:len(fp_head)]
            lines.append(_md_row([display(lab)] + ([] if one else [m]) + fp +
                                 [x for b in t.bits for x in _cells_md(t, t.entries.get((lab, m, b)))]))
    heading = title(t) + (f"; model {t.models[0]}" if t.columns == "bits" and len(t.models) == 1 else "")
    notes = list(t.notes) + [f"not in the table: {n}" for n in extra_notes]
    return "\n".join([heading, ""] + lines + ([""] + notes if notes else []))


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def records(t: Table) -> list[dict]:
    """Return one flat record per table cell (ours and the paper's), in row order."""
    out = []
    keys = [(lab, m, b) for b in t.bits for lab in t.labels for m in t.models] if t.columns == "model" else \
        [(lab, m, b) for lab in t.labels for m in t.models for b in t.bits]
    for lab, m, b in keys:
        e = t.entries.get((lab, m, b))
        if e is None:
            continue
        out.append({"label": lab, "method": e.cell.results["method"] if e.cell else lab, "model": m,
                    "w_bits": b[0], "a_bits": b[1], "metric": t.metric, "value": e.value, "fp": e.fp,
                    "drop": e.drop, "paper": e.paper, "paper_fp": e.paper_fp, "paper_drop": e.paper_drop,
                    "diff": e.diff, "paper_name": e.paper_name, "marked": e.marked,
                    "calib_num_samples": e.cell.calib_size if e.cell else None,
                    "time_s": e.cell.results.get("time_s") if e.cell else None,
                    "source": e.cell.source if e.cell else None})
    return out


CSV_FIELDS = ("label", "method", "model", "w_bits", "a_bits", "metric", "value", "fp", "drop", "paper", "paper_fp",
              "paper_drop", "diff", "paper_name", "marked", "calib_num_samples", "source")


def to_csv(tables: Sequence[Table]) -> str:
    """Return the tables' cells as CSV, one line per cell (a tidy table: filter or pivot it as needed)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for t in tables:
        for r in records(t):
            writer.writerow({k: ("" if v is None else round(v, 4) if isinstance(v, float) else v)
                             for k, v in r.items()})
    return buf.getvalue()


def to_json(tables: Sequence[Table], extra_notes: Sequence[str] = ()) -> str:
    """Return the tables as JSON: per table its layout, cells, FP values, papers and notes."""
    out = {"tables": [{"metric": t.metric, "title": title(t), "columns": t.columns, "labels": t.labels,
                       "models": t.models, "bits": [bits_name(b) for b in t.bits], "fp": t.fp,
                       "paper_fp": t.paper_fp if t.papers else {},
                       "papers": [{"name": p.name, "title": p.title, **p.source} for p in t.papers],
                       "notes": t.notes, "cells": records(t)} for t in tables],
           "not_in_table": list(extra_notes)}
    return json.dumps(out, indent=1, ensure_ascii=False) + "\n"
