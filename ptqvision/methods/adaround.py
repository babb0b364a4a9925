"""AdaRound, layer by layer (Nagel et al. 2020, as run in the BRECQ/QDrop code bases): learned rounding
of each layer's weights with activations off, then each layer's activation steps."""
from __future__ import annotations

from typing import Any

from .reconstruction import NO_PD, run_reconstruction

PRESET = {"partition": "layer", "skip_first_layer": False, "joint": False, "drop_prob": 1.0,
          **NO_PD}


def adaround(context: Any) -> dict:
    """Return the reconstruction report of layer-wise AdaRound."""
    return run_reconstruction(context)
