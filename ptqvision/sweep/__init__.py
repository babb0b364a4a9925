"""Sweeps: run a grid of configs as submitit jobs (local executor or SLURM), resumable, with one status file.

    from ptqvision.sweep import Sweep, SweepSettings, expand_configs, jobs_from_configs
    jobs = jobs_from_configs(expand_configs(['configs/qdrop/']), ['calib.num_samples=64'])
    Sweep('work_dirs/qdrop', jobs, SweepSettings(launcher='local', jobs=2)).run()
"""
from .job import STATES, read_status
from .launcher import (JobSpec, Planned, Sweep, SweepSettings, default_sweep_dir, elapsed_s, expand_configs,
                       job_alive, jobs_from_configs, plan_table, status_table)

__all__ = ["STATES", "JobSpec", "Planned", "Sweep", "SweepSettings", "default_sweep_dir", "elapsed_s",
           "expand_configs", "job_alive", "jobs_from_configs", "plan_table", "read_status", "status_table"]
