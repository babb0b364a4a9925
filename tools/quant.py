#!/usr/bin/env python
"""Quantize a model as a config says: python tools/quant.py CONFIG [--work-dir DIR] [--cfg-options k=v ...]."""
from __future__ import annotations

import argparse
import sys

from _cli import main_guard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("config", help="experiment config file (mmengine style)")
    p.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. quant.w_bits=4 calib.num_samples=64")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the config's (auto)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in the same work dir")
    p.add_argument("--dry-run", action="store_true", help="print the quantizer placement and exit")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> None:
        from ptqvision.runner import run, summary_table

        results = run(args.config, args.work_dir, args.cfg_options, args.device, args.resume, args.dry_run)
        if not args.dry_run:
            print(summary_table(results))

    return main_guard(work, args.debug)


if __name__ == "__main__":
    sys.exit(main())
