"""PTQ4SAM (Lv et al. 2024): QDrop's joint reconstruction on SAM's units (encoder attention and MLP sub-blocks,
the neck, every decoder attention and MLP; one image with all its prompts per step), plus two placement
changes that its preset switches on: Bimodal Integration of the decoder's token-to-image keys and the
adaptive-granularity log2 quantizer (AGQ) on every post-softmax map (REFERENCE.md section 5)."""
from __future__ import annotations

from typing import Any

from .reconstruction import NO_PD, run_reconstruction

PRESET = {"partition": "sub_block", "skip_first_layer": False, "joint": True, "drop_prob": 0.5, **NO_PD}
QUANT_PRESET = {"softmax": "agq", "bimodal_integration": True}


def ptq4sam(context: Any) -> dict:
    """Return the reconstruction report of PTQ4SAM (BIG and AGQ were applied by the placement and calibration)."""
    return run_reconstruction(context)
