#!/usr/bin/env python
"""Re-evaluate a quantized checkpoint: python tools/test.py CONFIG CHECKPOINT.

Rebuilds the quantized model from the checkpoint alone (no calibration) and evaluates it; if a
results.json lies beside the checkpoint, says whether its quantized metrics are reproduced exactly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from _cli import main_guard


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    status = {"code": 0}

    def work() -> None:
        from ptqvision.runner import reevaluate

        metrics = reevaluate(args.config, args.checkpoint, args.cfg_options, args.device)
        print(json.dumps(metrics))
        results_path = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "results.json")
        if os.path.isfile(results_path):
            with open(results_path) as f:
                recorded = json.load(f)["metrics"]["quant"]
            keys = [k for k, v in metrics.items() if isinstance(v, float)]  # the task's metrics (top1, segm_mAP, ...)
            same = bool(keys) and all(recorded.get(k) == metrics[k] for k in keys)
            shown = " ".join(f"{k} {recorded.get(k)}" for k in keys)
            print(f"{'reproduced exactly' if same else 'MISMATCH with'} {results_path}: {shown}")
            status["code"] = 0 if same else 3

    code = main_guard(work, args.debug)
    return code or status["code"]


if __name__ == "__main__":
    sys.exit(main())
