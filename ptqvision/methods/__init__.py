"""Methods are presets of the engine: each is a function that refines a calibrated quantized twin, and
(for the reconstruction methods) a preset of the ``recon`` settings it implies; a method may also preset
placement options it is defined with (RepQ-ViT: LayerNorm reparameterisation and a log√2 softmax; PTQ4SAM:
Bimodal Integration and the AGQ softmax quantizer)."""
from __future__ import annotations

from typing import Callable

from ..registry import METHODS, lookup
from . import adaround, brecq, pdquant, ptq4sam, qdrop
from .rtn import rtn

METHODS.register_module(name="rtn", module=rtn)
METHODS.register_module(name="repqvit", module=rtn)  # calibration only: its preset is all placement
METHODS.register_module(name="adaround", module=adaround.adaround)
METHODS.register_module(name="brecq", module=brecq.brecq)
METHODS.register_module(name="qdrop", module=qdrop.qdrop)
METHODS.register_module(name="pdquant", module=pdquant.pdquant)
METHODS.register_module(name="ptq4sam", module=ptq4sam.ptq4sam)

PRESETS: dict[str, dict] = {"adaround": adaround.PRESET, "brecq": brecq.PRESET, "qdrop": qdrop.PRESET,
                           "pdquant": pdquant.PRESET, "ptq4sam": ptq4sam.PRESET}
# Placement options a method is defined with; they fill quant.* keys the config leaves at None.
QUANT_PRESETS: dict[str, dict] = {"repqvit": {"ln_reparam": True, "softmax": "log_sqrt2"},
                                  "ptq4sam": ptq4sam.QUANT_PRESET}
QUANT_DEFAULTS = {"ln_reparam": False, "softmax": "uniform", "bimodal_integration": False}
# method.range_init='original': the settings (per config section) with which a method initialises its ranges
# as its original code does; 'default' keeps ptqvision's (the Lp search, activation ranges as the preset says).
ORIGINAL_RANGE_INITS: dict[str, dict] = {"qdrop": qdrop.ORIGINAL_RANGE_INIT, "pdquant": pdquant.ORIGINAL_RANGE_INIT}
RANGE_INITS = ("default", "original")


def get_method(name: str) -> Callable:
    """Return the method function registered under ``name``."""
    return lookup(METHODS, name, "method.type")


def uses_reconstruction(name: str) -> bool:
    """Return whether method ``name`` runs the reconstruction engine (and so reads ``recon.*``)."""
    return name in PRESETS
