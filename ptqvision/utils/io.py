"""Atomic writes of results and checkpoints (a reader never sees a half-written file) and safe checkpoint loading."""
from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any

import torch

from ..errors import CheckpointError
from .atomic import atomic_write, atomic_write_json, atomic_write_text  # noqa: F401  (re-exported)


def atomic_torch_save(path: str, obj: Any) -> None:
    """torch.save ``obj`` to ``path``, atomically."""
    atomic_write(path, lambda f: torch.save(obj, f))


def short_reason(exc: BaseException) -> str:
    """Return the first non-empty line of an exception's message, prefixed by its type."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _unpickler_reason(exc: pickle.UnpicklingError) -> str:
    """Return the one-line cause inside torch's multi-line 'Weights only load failed' message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    _, found, rest = text.partition("WeightsUnpickler error:")
    lines = [ln.strip() for ln in rest.splitlines() if ln.strip()] if found else []
    if not lines:
        return short_reason(exc)
    # Drop torch's advice on allow-listing globals: loading arbitrary objects is what we refuse.
    return lines[0].split(". Please use")[0].rstrip(".")[:200]


def load_torch_file(path: str) -> Any:
    """Return ``torch.load(path, weights_only=True)``; raise a one-line CheckpointError if that fails."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": noise next to the CheckpointError that follows.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if reason.startswith("Unsupported global"):
            raise CheckpointError(
                f"checkpoint {path} holds Python objects other than tensors and containers "
                f"({reason}); only state dicts load (weights_only=True)") from None
        raise CheckpointError(f"cannot load checkpoint {path} (corrupt or not a torch file): {reason}") from None
    except Exception as exc:  # noqa: BLE001  (whatever fails inside torch.load, the file is unusable)
        raise CheckpointError(f"cannot load checkpoint {path} (corrupt or not a torch file): {short_reason(exc)}") from None
