"""Methods are presets of the engine: each is a function that refines a calibrated quantized twin, and
(for the reconstruction methods) a preset of the ``recon`` settings it implies."""
from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from . import adaround, brecq, pdquant, qdrop
from .rtn import rtn

METHODS: dict[str, Callable] = {"rtn": rtn, "adaround": adaround.adaround, "brecq": brecq.brecq,
                                "qdrop": qdrop.qdrop, "pdquant": pdquant.pdquant}
PRESETS: dict[str, dict] = {"adaround": adaround.PRESET, "brecq": brecq.PRESET, "qdrop": qdrop.PRESET,
                           "pdquant": pdquant.PRESET}


def get_method(name: str) -> Callable:
    """Return the method function registered under ``name``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method.type '{name}'; available: {sorted(METHODS)}")
    return METHODS[name]


def uses_reconstruction(name: str) -> bool:
    """Return whether method ``name`` runs the reconstruction engine (and so reads ``recon.*``)."""
    return name in PRESETS
