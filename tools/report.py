#!/usr/bin/env python
"""Collect results.json files into a paper's table, beside its published numbers, with a plot.

    python tools/report.py WORK_DIRS_OR_SWEEP [...] [--format md|csv|json] [--paper qdrop|pdquant|...]
                           [--metric top1 ...] [--columns model|bits] [--allow-mismatch placement|calib|eval|all]
                           [--out FILE] [--no-plot]

Rows are method x bits, columns models; a cell is the quantized metric and its drop from FP. Cells whose
placement, calibration size or evaluation protocol differ are refused (the reason names the cells and
the field) unless --allow-mismatch names that kind, which marks them and notes the difference.
The table is printed and written to FILE (default: report.<format> in the first folder given), the
plot to FILE's name with .png.
"""
from __future__ import annotations

import argparse
import os
import sys

from _cli import main_guard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="WORK_DIRS_OR_SWEEP",
                   help="results.json files, work dirs, sweep folders, or folders holding them")
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument("--paper", nargs="+", default=[], metavar="NAME",
                   help="published numbers to put beside ours (packaged names, see --list-papers, or a .json file)")
    p.add_argument("--metric", nargs="+", default=None,
                   help="metrics, one table each (default: the task's main metric, e.g. top1); a dotted name "
                        "is any number of results.json, e.g. time_s.total")
    p.add_argument("--columns", choices=["model", "bits"], default="model",
                   help="columns: models (rows method x bits, the papers' layout) or bit settings")
    p.add_argument("--allow-mismatch", nargs="+", default=[], choices=["placement", "calib", "eval", "all"],
                   help="show cells that differ in this kind of protocol, marked, with the difference noted")
    p.add_argument("--out", help="file for the table (default: report.<format> in the first folder given)")
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument("--list-papers", action="store_true", help="list the packaged papers and exit")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> None:
        from ptqvision.errors import ReportError
        from ptqvision.report import available_papers, load_paper, make_report

        if args.list_papers:
            for name in available_papers():
                print(f"{name:<10} {load_paper(name).cite()}")
            return
        if not args.inputs:
            raise ReportError("give at least one results.json, work dir or sweep folder")
        first = args.inputs[0]
        out = args.out or os.path.join(first if os.path.isdir(first) else os.path.dirname(first) or ".",
                                       f"report.{args.format}")
        text = make_report(args.inputs, fmt=args.format, metrics=args.metric, papers=args.paper,
                           columns=args.columns, allow=args.allow_mismatch, out=out, plot=not args.no_plot)
        print(text, end="", flush=True)
        print(f"written to {out}" + ("" if args.no_plot else f" (plot {os.path.splitext(out)[0]}.png)"),
              file=sys.stderr)

    return main_guard(work, args.debug)


if __name__ == "__main__":
    sys.exit(main())
