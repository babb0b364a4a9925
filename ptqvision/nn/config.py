"""QuantConfig: the placement settings of a quantized twin, validated once."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from ..quant import OBSERVERS, check_bits


@dataclass
class QuantConfig:
    """Which tensors are quantized and how. Mirrors the ``quant`` section of an experiment config."""

    w_bits: int = 4
    a_bits: int = 4
    w_granularity: str = "channel"
    a_granularity: str = "tensor"
    w_symmetric: bool = False
    a_symmetric: bool = False
    w_observer: str = "lp"
    a_observer: str = "lp"
    lp_p: float = 2.4
    head_stem_8bit: bool = True          # first/last layer weights and the last layer's input at 8 bit
    stem_output_8bit: bool = False       # BRECQ also keeps the first layer's output at 8 bit
    quantize_residual_output: bool = True  # papers differ silently; recorded in every result
    fold_bn: bool = True
    overrides: list = field(default_factory=list)  # [{'pattern': 'layer4.*', 'w_bits': 8, 'a_bits': 8}]
    # Transformers (REFERENCE.md section 4); CNN placements ignore these.
    softmax: str | None = None           # post-softmax map: 'uniform', 'log2', 'log_sqrt2', 'agq' (None: the
                                         # method's preset, else 'uniform')
    attn_granularity: str = "tensor"     # q, k, v ranges: 'tensor' or 'head'
    ln_reparam: bool | None = None       # RepQ-ViT LayerNorm reparameterisation (None: the method's preset, else off)
    patch_embed_a_bits: int = 8          # the image entering the patch embedding
    # SAM (REFERENCE.md section 5); other placements refuse it on.
    bimodal_integration: bool | None = None  # PTQ4SAM's BIG sign fold in the decoder's token-to-image attentions
                                             # (None: the method's preset, ptq4sam: on, else off)

    def __post_init__(self) -> None:
        check_bits(self.w_bits, "quant.w_bits")
        check_bits(self.a_bits, "quant.a_bits")
        if self.w_granularity not in ("channel", "tensor"):
            raise ConfigError(f"quant.w_granularity must be 'channel' or 'tensor', got {self.w_granularity!r}")
        if self.a_granularity != "tensor":
            raise ConfigError(f"quant.a_granularity must be 'tensor', got {self.a_granularity!r}")
        for key in ("w_observer", "a_observer"):
            if getattr(self, key) not in OBSERVERS:
                raise ConfigError(f"quant.{key} must be one of {sorted(OBSERVERS)}, got {getattr(self, key)!r}")
        check_bits(self.patch_embed_a_bits, "quant.patch_embed_a_bits")
        if self.softmax not in (None, "uniform", "log2", "log_sqrt2", "agq"):
            raise ConfigError(f"quant.softmax must be 'uniform', 'log2', 'log_sqrt2' or 'agq', got {self.softmax!r}")
        if self.attn_granularity not in ("tensor", "head"):
            raise ConfigError(f"quant.attn_granularity must be 'tensor' or 'head', got {self.attn_granularity!r}")
        for key in ("ln_reparam", "bimodal_integration"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), bool):
                raise ConfigError(f"quant.{key} must be true or false, got {getattr(self, key)!r}")
        for key in ("w_symmetric", "a_symmetric", "head_stem_8bit", "stem_output_8bit",
                    "quantize_residual_output", "fold_bn"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"quant.{key} must be true or false, got {getattr(self, key)!r}")
        if isinstance(self.lp_p, bool) or not isinstance(self.lp_p, (int, float)) or not self.lp_p > 0:
            raise ConfigError(f"quant.lp_p must be a positive number, got {self.lp_p!r}")
        _check_overrides(self.overrides)
        for i, rule in enumerate(self.overrides):
            unknown = set(rule) - {"pattern", "w_bits", "a_bits"}
            if unknown:
                raise ConfigError(f"quant.overrides[{i}] has unknown keys {sorted(unknown)}")
            for key in ("w_bits", "a_bits"):
                if key in rule:
                    check_bits(rule[key], f"quant.overrides[{i}].{key}")

    @classmethod
    def from_any(cls, cfg: "QuantConfig | Mapping[str, Any] | None") -> "QuantConfig":
        """Return a QuantConfig from itself, a mapping (unknown keys raise) or None (defaults)."""
        if isinstance(cfg, QuantConfig):
            return cfg
        cfg = dict(cfg or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ConfigError(f"unknown quant config key(s) {unknown}; valid keys: {sorted(names)}")
        _check_overrides(cfg.get("overrides", []))
        cfg["overrides"] = [dict(r) for r in cfg.get("overrides", [])]
        return cls(**cfg)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable copy."""
        return dataclasses.asdict(self)


def _check_overrides(overrides: Any) -> None:
    """Raise ConfigError unless ``overrides`` is a list of dicts, each with a string 'pattern'."""
    usage = "a list of dicts like dict(pattern='layer4.*', w_bits=8, a_bits=8)"
    if not isinstance(overrides, (list, tuple)):
        raise ConfigError(f"quant.overrides must be {usage}, got {overrides!r}")
    for i, rule in enumerate(overrides):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("pattern"), str):
            raise ConfigError(f"quant.overrides[{i}] must be a dict with a string 'pattern' ({usage}), got {rule!r}")
