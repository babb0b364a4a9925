"""The quantized checkpoint: state dict plus the metadata needed to rebuild the twin.

It holds only tensors, strings, numbers, lists and dicts, so it loads with ``weights_only=True``.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .errors import CheckpointError
from .utils.io import atomic_torch_save, load_torch_file

FORMAT = "ptqvision.quantized"
VERSION = 1


def save_quantized(path: str, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write the quantized model's state and ``meta`` atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(path, {"format": FORMAT, "version": VERSION, "state_dict": state, "meta": meta})


def load_quantized(path: str) -> dict[str, Any]:
    """Return the checkpoint dict; raise CheckpointError if it is missing, corrupt or foreign."""
    payload = load_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ptqvision quantized checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, expected {VERSION}")
    return payload


def load_into(model: nn.Module, payload: dict[str, Any], path: str = "checkpoint") -> None:
    """Load the checkpoint's state into ``model`` strictly; raise CheckpointError on any mismatch."""
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise CheckpointError(f"{path} does not match the model built from the config: "
                              f"{' '.join(lines[1:3])[:300]}") from exc
