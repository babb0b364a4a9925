"""Methods are presets of the engine: each is a function that refines a calibrated quantized twin."""
from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from .rtn import rtn

METHODS: dict[str, Callable] = {"rtn": rtn}


def get_method(name: str) -> Callable:
    """Return the method function registered under ``name``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method.type '{name}'; available: {sorted(METHODS)}")
    return METHODS[name]
