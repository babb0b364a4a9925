"""Shared driver of the reconstruction presets: calibration batches and settings from the run context."""
from __future__ import annotations

from typing import Any

from ..recon import ReconSettings, reconstruct
from ..recon.settings import OFF_UNLESS_SET

# What the presets before PD-Quant leave off: no prediction difference, no distribution correction, ranges
# calibrated once.
NO_PD = dict(OFF_UNLESS_SET)


def run_reconstruction(context: Any) -> dict:
    """Reconstruct ``context.qmodel`` in place with ``context.cfg['recon']``; return the engine's report."""
    settings = ReconSettings.from_dict(context.cfg["recon"])
    schedule = context.adapter.schedule(context.qmodel, settings.partition, settings.skip_first_layer)
    return reconstruct(context.qmodel, context.calib_batches, settings, context.device, work_dir=context.work_dir,
                       seed=context.cfg["seed"], fp_model=context.fp_model, fingerprint=context.fingerprint,
                       resume=context.resume, progress=bool(context.cfg["eval"]["progress"]), schedule=schedule,
                       distance=context.task.distance)
