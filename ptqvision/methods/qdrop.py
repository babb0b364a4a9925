"""QDrop (Wei et al. 2022): block-wise AdaRound and activation steps learned jointly, with every
activation (and the block input) quantized only with probability 0.5 during reconstruction."""
from __future__ import annotations

from typing import Any

from .reconstruction import NO_PD, run_reconstruction

PRESET = {"partition": "block", "skip_first_layer": False, "joint": True, "drop_prob": 0.5,
          **NO_PD}


def qdrop(context: Any) -> dict:
    """Return the reconstruction report of QDrop."""
    return run_reconstruction(context)
