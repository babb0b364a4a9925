"""QDrop (Wei et al. 2022): block-wise AdaRound and activation steps learned jointly, with every
activation (and the block input) quantized only with probability 0.5 during reconstruction."""
from __future__ import annotations

from typing import Any

from .reconstruction import NO_PD, run_reconstruction

PRESET = {"partition": "block", "skip_first_layer": False, "joint": True, "drop_prob": 0.5,
          **NO_PD}
# The range initialisation of the original code (``method.range_init='original'``, REFERENCE.md section 1):
# its MSE search (1-D for one-sided data, range x zero point otherwise, p 2.4) for weights and activations,
# and each unit's activation ranges set again from its inputs in the already-quantized model (256 samples)
# just before it is reconstructed.
ORIGINAL_RANGE_INIT = {"quant": {"w_observer": "qdrop_mse", "a_observer": "qdrop_mse"},
                       "recon": {"act_reinit_samples": 256}}


def qdrop(context: Any) -> dict:
    """Return the reconstruction report of QDrop."""
    return run_reconstruction(context)
