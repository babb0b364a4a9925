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
    batches = [x for x, _ in context.calib_loader]
    return reconstruct(context.qmodel, batches, settings, context.device, work_dir=context.work_dir,
                       seed=context.cfg["seed"], fp_model=context.fp_model, fingerprint=context.fingerprint,
                       resume=context.resume, progress=bool(context.cfg["eval"]["progress"]))
