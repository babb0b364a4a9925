"""Initialise quantizer ranges: weights from the weights, activations from calibration images."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn
from tqdm import tqdm

from ..quant import UniformQuantizer
from .modules import QUANT_LAYERS


def weight_quantizers(model: nn.Module) -> list[UniformQuantizer]:
    """Return the weight quantizers of every quantized layer."""
    return [m.weight_quantizer for m in model.modules() if isinstance(m, QUANT_LAYERS)]


def activation_quantizers(model: nn.Module) -> list[UniformQuantizer]:
    """Return every quantizer that is not a weight quantizer."""
    wq = {id(q) for q in weight_quantizers(model)}
    return [m for m in model.modules() if isinstance(m, UniformQuantizer) and id(m) not in wq]


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str | None = None,
              progress: bool = True) -> int:
    """Set every quantizer's range; return the number of images seen. Batches go to ``device``
    (default: where the model's parameters are).

    Weights first (so activation ranges are observed behind quantized weights), then one pass of the
    calibration images with every activation quantizer observing and passing its input through.
    """
    for layer in model.modules():
        if isinstance(layer, QUANT_LAYERS):
            layer.weight_quantizer.calibrate_from(layer.weight)
    return calibrate_activations(model, batches, device, progress)


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches: Iterable[torch.Tensor],
                          device: torch.device | str | None = None, progress: bool = True) -> int:
    """Set the range of every enabled activation quantizer from one pass of ``batches`` through ``model``
    as it currently quantizes; return the number of images seen."""
    model.eval()
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    seen = 0
    with observing([q for q in activation_quantizers(model) if q.enabled]):
        for x in tqdm(batches, desc="calibrate", disable=not progress, leave=False, dynamic_ncols=True):
            model(x.to(device))
            seen += x.shape[0]
    return seen


@contextmanager
def observing(quantizers: list[UniformQuantizer]) -> Iterator[None]:
    """Let ``quantizers`` observe what passes through them in the enclosed code, then set their ranges
    from it; on an error they leave observing mode untouched."""
    for q in quantizers:
        q.start_observing()
    try:
        yield
    except BaseException:
        for q in quantizers:
            q.observer = None
        raise
    for q in quantizers:
        q.finish_observing()
