#!/usr/bin/env python
"""Run every config of a grid through submitit, one tools/quant.py job per config, resumable.

    python tools/sweep.py CONFIG_DIR_OR_GLOB [...] [--work-dir SWEEP] [--cfg-options k=v ...]
                          [--launcher local|slurm] [--gpus N] [--jobs N] [--status] [--dry-run]

Each config runs in SWEEP/<config name>/ (default SWEEP: work_dirs/<config folder>). Invoking the same
command again skips the runs finished with the same resolved config, resumes the interrupted ones with
--resume and leaves alone those still queued or running; SWEEP/status.json holds every job's state.
"""
from __future__ import annotations

import argparse
import sys

from _cli import main_guard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="*", metavar="CONFIG_DIR_OR_GLOB",
                   help="config folders (their *.py files) or glob patterns, "
                        "e.g. configs/qdrop/ 'configs/*/resnet18_*.py'")
    p.add_argument("--work-dir", help="the sweep folder (default: work_dirs/<folder of the first config>)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="applied to every config")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="submitit's local executor on this machine, or SLURM (default: local)")
    p.add_argument("--gpus", type=int, default=None,
                   help="local: GPUs used at once, one run per GPU (default: every visible GPU); slurm: at most "
                        "this many runs at once, one GPU each (default: no limit); 0: CPU runs")
    p.add_argument("--jobs", type=int, default=None, help="concurrent runs without GPUs (local default: 1)")
    p.add_argument("--timeout-min", type=int, default=3 * 24 * 60,
                   help="time limit of one run in minutes; a run that reaches it is requeued and resumes")
    p.add_argument("--slurm-partition")
    p.add_argument("--slurm-account")
    p.add_argument("--slurm-qos")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem-gb", type=float)
    p.add_argument("--slurm-option", nargs="+", default=[], metavar="KEY=VALUE",
                   help="further sbatch options, e.g. constraint=a100")
    p.add_argument("--no-wait", action="store_true",
                   help="return once the jobs are submitted (the default on SLURM; --status shows progress)")
    p.add_argument("--wait", action="store_true", help="on SLURM, wait until every job has ended")
    p.add_argument("--status", action="store_true", help="print the sweep's status and exit")
    p.add_argument("--dry-run", action="store_true", help="print what would be run, resumed or skipped, and exit")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code = [0]

    def work() -> None:
        from ptqvision.errors import ConfigError
        from ptqvision.sweep import (Sweep, SweepSettings, default_sweep_dir, expand_configs, jobs_from_configs,
                                     plan_table, status_table)

        if not args.configs and not (args.status and args.work_dir):
            raise ConfigError("give the configs of the sweep (folders or glob patterns), or --status --work-dir SWEEP")
        sweep_dir = args.work_dir or default_sweep_dir(args.configs)
        if args.status:
            print(status_table(sweep_dir))
            return
        extra = {}
        for opt in args.slurm_option:
            if "=" not in opt:
                raise ConfigError(f"--slurm-option expects key=value, got {opt!r}")
            key, value = opt.split("=", 1)
            extra[key] = value
        settings = SweepSettings(
            launcher=args.launcher, gpus=args.gpus, jobs=args.jobs, timeout_min=args.timeout_min,
            slurm_partition=args.slurm_partition, slurm_account=args.slurm_account, slurm_qos=args.slurm_qos,
            cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, slurm_extra=extra,
            wait=True if args.wait else False if args.no_wait else None)
        jobs = jobs_from_configs(expand_configs(args.configs), args.cfg_options)
        sweep = Sweep(sweep_dir, jobs, settings)
        if args.dry_run:
            print(plan_table(sweep.plan(), sweep_dir))
            return
        try:
            records = sweep.run()
        except KeyboardInterrupt:
            print(status_table(sweep_dir, [j.name for j in jobs]))
            print("interrupted: rerun the same command to continue (finished runs are skipped, interrupted ones "
                  "resume)", file=sys.stderr)
            code[0] = 130
            return
        print(status_table(sweep_dir, [j.name for j in jobs]))
        code[0] = 1 if any(r.get("state") == "failed" for r in records.values()) else 0

    guard = main_guard(work, args.debug)
    return guard or code[0]


if __name__ == "__main__":
    sys.exit(main())
