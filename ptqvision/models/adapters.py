"""Model adapters: one per family. An adapter builds nothing new in the engine; it turns a full-precision
model of its family into a quantized twin by placement rules (every quantized op says which quantizers
and weights it has), lists what it keeps in full precision on purpose, calibrates it, and cuts it into a
schedule of units (block, sub-block, layer) for the reconstruction engine.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.fx as fx
from torch import nn

from ..errors import ConfigError
from ..nn import QuantConfig, calibrate, quantize
from ..registry import ADAPTERS, lookup
from .fx_schedule import build_schedule, partition
from .schedule import Schedule

ADAPTER_ATTR = "ptq_adapter"  # the twin remembers which adapter made it


class ModelAdapter:
    """The interface of a family. Subclasses register with ``@ADAPTERS.register_module(name=...)``."""

    name = "base"
    partitions: tuple[str, ...] = ("block", "layer")

    @classmethod
    def claims(cls, model: nn.Module) -> bool:
        """Return whether this adapter handles ``model`` when ``model.family`` is 'auto'."""
        return False

    def quantize(self, model: nn.Module, config: QuantConfig) -> nn.Module:
        """Return the uncalibrated quantized twin of ``model`` (``model`` is left untouched)."""
        raise NotImplementedError

    def full_precision(self, qmodel: nn.Module) -> list[dict]:
        """Return the ops kept in full precision on purpose: [{'name': ..., 'what': ...}]."""
        return []

    def calibrate(self, qmodel: nn.Module, batches: Iterable[Any], device: torch.device, progress: bool = True,
                  forward: Callable | None = None, work_dir: str | None = None) -> dict:
        """Set every quantizer's range from the calibration batches; return a record of what was done (plots
        of what it did may go to ``work_dir``)."""
        calibrate(qmodel, batches, device, progress=progress, forward=forward)
        return {}

    def schedule(self, qmodel: nn.Module, partition_mode: str = "block", skip_first_layer: bool = False) -> Schedule:
        """Return the items and units the engine reconstructs."""
        raise NotImplementedError

    def state(self, qmodel: nn.Module) -> dict:
        """Return what a checkpoint needs beyond the state dict to rebuild the twin (JSON-serialisable)."""
        return {}

    def restore(self, qmodel: nn.Module, state: dict) -> None:
        """Apply :meth:`state` to a freshly quantized twin before its state dict is loaded."""

    def check_partition(self, mode: str) -> None:
        if mode not in self.partitions:
            raise ConfigError(f"recon.partition={mode!r} is not available for {self.name} models; "
                              f"choose one of {', '.join(self.partitions)}")


@ADAPTERS.register_module(name="cnn")
class CNNAdapter(ModelAdapter):
    """CNNs (torchvision, timm, our EfficientNet-Lite0 and folded MobileNetV2) through torch.fx: the BRECQ/QDrop
    placement of REFERENCE.md section 2 and blocks found from residual adds (see :mod:`ptqvision.nn.twin`)."""

    name = "cnn"

    @classmethod
    def claims(cls, model: nn.Module) -> bool:
        return True  # the fallback: anything torch.fx traces

    def quantize(self, model: nn.Module, config: QuantConfig) -> nn.Module:
        refuse_sam_options(QuantConfig.from_any(config), self.name)
        twin = quantize(model, config)
        setattr(twin, ADAPTER_ATTR, self.name)
        return twin

    def schedule(self, qmodel: nn.Module, partition_mode: str = "block", skip_first_layer: bool = False) -> Schedule:
        self.check_partition(partition_mode)
        if not isinstance(qmodel, fx.GraphModule):
            raise ConfigError("the cnn adapter reconstructs traced twins only (build it with its quantize())")
        return build_schedule(qmodel, partition(qmodel, partition_mode, skip_first_layer))


def refuse_sam_options(cfg: QuantConfig, family: str) -> None:
    """Raise ConfigError when a SAM-only placement option is on for another family."""
    if cfg.bimodal_integration:
        raise ConfigError(f"quant.bimodal_integration applies to SAM's decoder only, not to {family} models")


def get_adapter(name: str) -> ModelAdapter:
    """Return an instance of the adapter registered under ``name``."""
    return lookup(ADAPTERS, name, "model.family")()


def adapter_for(model: nn.Module, family: str = "auto") -> ModelAdapter:
    """Return the adapter of ``model``: the one that made it (a twin), the one named, or the first that claims it."""
    made_by = getattr(model, ADAPTER_ATTR, None)
    if made_by is not None:
        return get_adapter(made_by)
    if family != "auto":
        return get_adapter(family)
    if isinstance(model, fx.GraphModule):
        return CNNAdapter()
    for name in sorted(ADAPTERS.module_dict, key=lambda n: n == "cnn"):  # the fallback last
        cls = ADAPTERS.module_dict[name]
        if cls.claims(model):
            return cls()
    return CNNAdapter()
