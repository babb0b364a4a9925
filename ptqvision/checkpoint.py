"""The quantized checkpoint: state dict plus the metadata needed to rebuild the twin.

Weights are stored hard-quantized (on their grid; re-quantizing them is the identity), next to the
quantizer parameters and the placement they were made with. It holds only tensors, strings, numbers,
lists and dicts, so it loads with ``weights_only=True``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import CheckpointError
from .nn import placement
from .nn.ops import quant_ops
from .utils.io import atomic_torch_save, load_torch_file

FORMAT = "ptqvision.quantized"
VERSION = 1


def save_quantized(path: str, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write the quantized model's state (weights hard-quantized), its placement and ``meta`` atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, op in quant_ops(model):
            quantizers = op.quantizers()
            for role, weight in op.weights().items():  # a weight's role is its attribute name
                if role in quantizers and op.quantize_weight:
                    state[f"{name}.{role}" if name else role] = quantizers[role](weight).detach().cpu()
    meta = {**meta, "placement": placement(model)}
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
    """Load the checkpoint's state into ``model`` strictly; raise CheckpointError on any mismatch,
    including a placement (bits, granularity, observer per quantizer) other than the one it was made with."""
    saved = payload.get("meta", {}).get("placement")
    if saved is not None:
        current = {r["name"]: r for r in placement(model)}
        for row in saved:
            now = current.get(row["name"])
            if now != row:
                what = "is missing" if now is None else f"has {_diff(row, now)}"
                raise CheckpointError(f"{path} was made with another placement: quantizer {row['name']} {what} "
                                      "in the model built from the config (check quant.* settings)")
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise CheckpointError(f"{path} does not match the model built from the config: "
                              f"{' '.join(lines[1:3])[:300]}") from exc


def _diff(saved: dict, now: dict) -> str:
    return ", ".join(f"{k} {now.get(k)!r} (checkpoint: {v!r})" for k, v in saved.items() if now.get(k) != v)
