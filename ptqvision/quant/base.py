"""The one interface every quantizer answers (uniform, AdaRound, log2): calibration, evaluation, placement.

Calibration, reconstruction, hardening, the evaluation invariants, checkpoints and the placement table
talk to quantizers only through this class, never through a list of concrete types.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

MIN_BITS, MAX_BITS = 2, 8


def check_bits(bits: int, what: str = "bits") -> int:
    """Return ``bits`` if it is an integer in 2..8, else raise ConfigError."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"{what} must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    return bits


class Quantizer(nn.Module):
    """Base of every fake quantizer.

    State every quantizer has:
      * ``enabled``: False makes it the identity (full-precision runs of the same module);
      * ``drop_prob``: probability that an element is quantized (QDrop); evaluation requires exactly 1;
      * ``observer``: not None while it observes (pass-through) during range calibration.
    """

    #: registered name of the quantizer kind, shown in the placement table
    kind = "quantizer"
    #: True for quantizers whose calibration needs the tensor the quantized one multiplies (AGQ needs V)
    needs_partner = False

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True
        self.drop_prob = 1.0
        self.observer = None

    @property
    def observing(self) -> bool:
        """Return whether the quantizer is recording ranges (and passing its input through)."""
        return self.observer is not None

    def start_observing(self, **observer_kwargs: object) -> None:
        """Enter pass-through mode with a fresh observer."""
        raise NotImplementedError

    def finish_observing(self) -> None:
        """Turn what was observed into quantization parameters and leave observing mode."""
        raise NotImplementedError

    def abort_observing(self) -> None:
        """Leave observing mode without changing any parameter (after an error)."""
        self.observer = None

    def learnable_steps(self) -> list[nn.Parameter]:
        """Return the parameters reconstruction may learn for this quantizer (step sizes), possibly none."""
        return []

    @property
    def is_calibrated(self) -> bool:
        """Return whether the quantizer has parameters to quantize with."""
        return True

    def eval_problems(self) -> list[str]:
        """Return what keeps this quantizer from a valid evaluation state (empty when ready)."""
        problems = []
        if self.observer is not None:
            problems.append("observer still active")
        if not self.is_calibrated:
            problems.append("not calibrated")
        if self.drop_prob != 1.0:
            problems.append(f"drop probability {self.drop_prob} != 1")
        if not self.enabled:
            problems.append("disabled")
        return problems

    def describe(self) -> dict:
        """Return the placement record of this quantizer (JSON-serialisable)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class SteppedQuantizer(Quantizer):
    """A quantizer with a bit width, a learnable step ``scale`` (frozen unless reconstruction learns it) and
    a ``calibrated`` flag persisted in checkpoints, mirrored on the host so that forward never syncs with
    the device to read it."""

    def __init__(self, bits: int, num_channels: int = 1) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.scale = nn.Parameter(torch.ones(num_channels), requires_grad=False)
        self.register_buffer("calibrated", torch.tensor(False))
        self._ready = False

    @property
    def qmax(self) -> int:
        return 2 ** self.bits - 1

    @property
    def is_calibrated(self) -> bool:
        return self._ready and bool(self.calibrated)

    def learnable_steps(self) -> list[nn.Parameter]:
        return [self.scale]

    def set_bits(self, bits: int) -> None:
        """Change the bit width; the quantizer must be calibrated again afterwards."""
        self.bits = check_bits(bits)
        self._set_calibrated(False)

    def _set_calibrated(self, value: bool) -> None:
        self.calibrated.fill_(value)
        self._ready = value

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ready = bool(self.calibrated)
