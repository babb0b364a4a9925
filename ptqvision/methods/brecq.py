"""BRECQ (Li et al. 2021): block-wise AdaRound with activations off (the 8-bit stem is left alone), then a
second pass that learns the activation steps (5 000 iterations, lr 4e-4, p = 2.4)."""
from __future__ import annotations

from typing import Any

from .reconstruction import NO_PD, run_reconstruction

PRESET = {"partition": "block", "skip_first_layer": True, "joint": False, "drop_prob": 1.0,
          **NO_PD}


def brecq(context: Any) -> dict:
    """Return the reconstruction report of BRECQ."""
    return run_reconstruction(context)
