"""Reconstruction settings: the ``recon`` config section, checked, with the method's preset filled in."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from ..errors import ConfigError
from .cache import CACHE_MODES
from .losses import LOSSES
PARTITIONS = ("block", "sub_block", "layer")  # which the model's adapter supports is checked by the adapter

AMP_MODES = ("auto", "off", "bf16", "fp16")
OFF_UNLESS_SET = {"pd_loss": False, "dc": False, "act_reinit_samples": 0}


@dataclass
class ActStage:
    """BRECQ's second stage: activation step sizes only."""

    iters: int = 5000
    lr: float = 4e-4
    p: float = 2.4
    init_samples: int = 64


@dataclass
class ReconSettings:
    """Every knob of the reconstruction engine. ``None`` means "the method's preset decides"."""

    iters: int = 20000
    batch_size: int = 32
    partition: str | None = None          # 'block' (BRECQ, QDrop) or 'layer' (AdaRound)
    skip_first_layer: bool | None = None  # BRECQ leaves the 8-bit stem alone; QDrop reconstructs it
    joint: bool | None = None             # weights and activation steps in one pass (QDrop) or two stages (BRECQ)
    drop_prob: float | None = None        # QDrop: probability that an activation is quantized (1 = always)
    loss: str = "lp"                      # 'lp' or 'fisher' (BRECQ's Fisher-diagonal weighting)
    p: float = 2.0
    round_lambda: float = 0.01            # 0.1 for MobileNetV2, 0.2 for MnasNet
    warmup: float = 0.2
    beta: list = field(default_factory=lambda: [20.0, 2.0])
    weight_lr: float = 1e-3
    act_lr: float = 4e-5
    learn_act_steps: bool = True
    act_stage: dict = field(default_factory=lambda: asdict(ActStage()))
    # PD-Quant (REFERENCE.md section 3): prediction difference through the full-precision tail.
    pd_loss: bool | None = None           # add KL(softmax(z_fp/T) ‖ softmax(z_q/T)) / pd_lambda to the unit loss
    pd_lambda: float = 0.1                # λ_r
    pd_temperature: float = 1.0           # T: 4 for ResNet/RegNet, 1 for MobileNetV2/MnasNet
    pd_amp: str = "auto"                  # tail precision: 'auto' (bf16 on CUDA, fp32 on CPU), 'off', 'bf16', 'fp16'
    act_reinit_samples: int | None = None  # PD-Quant: re-initialise a unit's activation ranges on this many
                                           # quantized-model inputs before reconstructing it (0: off)
    # PD-Quant distribution correction of each block's calibration input (BatchNorm-statistics matching).
    dc: bool | None = None
    dc_lambda: float = 0.02               # λ_c: 0.02 ResNet, 0.01 RegNet, 0.005 MobileNetV2, 0.001 MnasNet
    dc_iters: int = 500
    dc_lr: float = 1e-3
    dc_patience: int = 100
    dc_min_lr: float = 1e-5
    cache: str = "auto"
    recompute: bool | str = "auto"      # the schedule's recompute segment (SAM's decoder): values produced per step
                                          # from a few cached ones instead of cached for every sample; 'auto': when
                                          # the whole cache would not fit on the device
    chunk_rows: int | None = None         # split each step's batch into chunks of at most this many rows of the
                                          # unit's largest input (SAM: prompts), accumulating the gradients:
                                          # bounds device memory, same step; None: one chunk
    checkpoint_units: bool = True

    @classmethod
    def defaults(cls) -> dict:
        return asdict(cls())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReconSettings":
        """Return validated settings; raise ConfigError naming the first bad key."""
        s = cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
        for key, off in OFF_UNLESS_SET.items():  # PD-Quant's additions are off unless a preset turns them on
            if getattr(s, key) is None:
                setattr(s, key, off)
        s.validate()
        return s

    def validate(self) -> None:
        def bad(key: str, want: str) -> ConfigError:
            return ConfigError(f"recon.{key} must be {want}, got {getattr(self, key)!r}")

        for key in ("iters", "batch_size"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "iters" else 1):
                raise bad(key, "a non-negative integer" if key == "iters" else "a positive integer")
        if self.partition not in PARTITIONS:
            raise bad("partition", f"one of {PARTITIONS}")
        for key in ("skip_first_layer", "joint", "learn_act_steps", "checkpoint_units", "pd_loss", "dc"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "true or false")
        if not isinstance(self.drop_prob, (int, float)) or not 0.0 < self.drop_prob <= 1.0:
            raise bad("drop_prob", "a number in (0, 1]")
        if self.loss not in LOSSES:
            raise bad("loss", f"one of {LOSSES}")
        for key in ("p", "weight_lr", "act_lr", "pd_lambda", "pd_temperature", "dc_lambda", "dc_lr", "dc_min_lr"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise bad(key, "a positive number")
        if not isinstance(self.round_lambda, (int, float)) or self.round_lambda < 0:
            raise bad("round_lambda", "a non-negative number")
        if not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup < 1:
            raise bad("warmup", "a number in [0, 1)")
        if not (isinstance(self.beta, (list, tuple)) and len(self.beta) == 2 and all(b > 0 for b in self.beta)):
            raise bad("beta", "[start, end] with positive numbers")
        for key in ("act_reinit_samples", "dc_iters", "dc_patience"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(key, "a non-negative integer")
        if self.pd_amp not in AMP_MODES:
            raise bad("pd_amp", f"one of {AMP_MODES}")
        if self.chunk_rows is not None and (isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int)
                                            or self.chunk_rows < 1):
            raise bad("chunk_rows", "a positive integer or None")
        if self.chunk_rows is not None and self.pd_loss:
            raise ConfigError("recon.chunk_rows cannot be combined with the prediction difference (recon.pd_loss)")
        if self.recompute not in (True, False, "auto"):
            raise bad("recompute", "true, false or 'auto'")
        if self.recompute is True and (self.pd_loss or self.loss == "fisher" or self.dc):
            raise ConfigError("recon.recompute=true cannot be combined with the prediction difference, the Fisher loss "
                              "or distribution correction (they need every cached value)")
        if self.cache not in CACHE_MODES:
            raise bad("cache", f"one of {CACHE_MODES}")
        unknown = set(self.act_stage) - {f.name for f in fields(ActStage)}
        if unknown:
            raise ConfigError(f"unknown config key 'recon.act_stage.{sorted(unknown)[0]}'")
        stage = ActStage(**self.act_stage)
        if not (isinstance(stage.iters, int) and stage.iters >= 0 and isinstance(stage.init_samples, int)
                and stage.init_samples >= 1 and stage.lr > 0 and stage.p > 0):
            raise ConfigError(f"recon.act_stage must have iters >= 0, init_samples >= 1, lr > 0, p > 0: {self.act_stage}")

    @property
    def stage2(self) -> ActStage:
        return ActStage(**self.act_stage)


def apply_preset(recon: dict, preset: Mapping[str, Any]) -> dict:
    """Return ``recon`` with every None filled from the method's ``preset``."""
    out = dict(recon)
    for key, value in preset.items():
        if out.get(key) is None:
            out[key] = value
    return out
