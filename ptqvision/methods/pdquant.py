"""PD-Quant (Liu et al. 2023): QDrop plus a prediction-difference loss (the quantized unit's output through
the full-precision rest of the network to logits, KL to the full-precision logits), per-unit
re-initialisation of activation ranges behind the quantized prefix, and distribution correction of each
block's calibration input (BatchNorm-statistics matching on the un-fused full-precision model)."""
from __future__ import annotations

from typing import Any

from .qdrop import ORIGINAL_RANGE_INIT  # noqa: F401  (PD-Quant's code forks QDrop's: the same initialisation)
from .reconstruction import run_reconstruction

PRESET = {"partition": "block", "skip_first_layer": False, "joint": True, "drop_prob": 0.5,
          "pd_loss": True, "dc": True, "act_reinit_samples": 256}


def pdquant(context: Any) -> dict:
    """Return the reconstruction report of PD-Quant."""
    return run_reconstruction(context)
