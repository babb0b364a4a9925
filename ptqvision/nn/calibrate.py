"""Initialise quantizer ranges: weights from the weights, activations from calibration images."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm import tqdm

from ..quant.base import Quantizer
from .ops import quant_ops, weight_quantizer_ids, weight_quantizers  # noqa: F401  (weight_quantizers re-exported)


def activation_quantizers(model: nn.Module) -> list[Quantizer]:
    """Return every quantizer that is not a weight quantizer (inputs, outputs, matmul operands, softmax)."""
    wq = weight_quantizer_ids(model)
    return [m for m in model.modules() if isinstance(m, Quantizer) and id(m) not in wq]


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[Any], device: torch.device | str | None = None,
              progress: bool = True, forward: Callable[[nn.Module, tuple], Any] | None = None) -> int:
    """Set every quantizer's range; return the number of images seen. Batches go to ``device``
    (default: where the model's parameters are).

    Weights first (so activation ranges are observed behind quantized weights), then one pass of the
    calibration images with every activation quantizer observing and passing its input through.
    """
    for _, op in quant_ops(model):
        quantizers = op.quantizers()
        for role, weight in op.weights().items():
            if role in quantizers:
                quantizers[role].calibrate_from(weight)
    return calibrate_activations(model, batches, device, progress, forward)


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches: Iterable[Any], device: torch.device | str | None = None,
                          progress: bool = True, forward: Callable[[nn.Module, tuple], Any] | None = None) -> int:
    """Set the range of every enabled activation quantizer from one pass of ``batches`` through ``model``
    as it currently quantizes; return the number of samples seen. A batch is a tensor or a tuple of
    tensors (one per model input); ``forward(model, batch_tuple)`` runs it (default ``model(*batch)``)."""
    model.eval()
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    seen = 0
    with observing([q for q in activation_quantizers(model) if q.enabled]):
        for x in tqdm(batches, desc="calibrate", disable=not progress, leave=False, dynamic_ncols=True):
            batch = tuple(t.to(device) for t in (x if isinstance(x, (tuple, list)) else (x,)))
            (forward or _call)(model, batch)
            seen += batch[0].shape[0]
    return seen


@contextmanager
def quantization_off(model: nn.Module) -> Iterator[None]:
    """Run the enclosed code with every quantizer of ``model`` disabled and every op on its raw weights (the
    twin computes in full precision); the previous states come back afterwards."""
    ops = [(op, op.quantize_weight) for _, op in quant_ops(model)]
    quantizers = [(q, q.enabled) for q in model.modules() if isinstance(q, Quantizer)]
    for op, _ in ops:
        op.quantize_weight = False
    for q, _ in quantizers:
        q.enabled = False
    try:
        yield
    finally:
        for op, flag in ops:
            op.quantize_weight = flag
        for q, flag in quantizers:
            q.enabled = flag


@contextmanager
def observing(quantizers: list[Quantizer]) -> Iterator[None]:
    """Let ``quantizers`` observe what passes through them in the enclosed code, then set their ranges
    from it; on an error they leave observing mode untouched."""
    for q in quantizers:
        q.start_observing()
    try:
        yield
    except BaseException:
        for q in quantizers:
            q.abort_observing()
        raise
    for q in quantizers:
        q.finish_observing()


def _call(model: nn.Module, batch: tuple) -> Any:
    return model(*batch)
