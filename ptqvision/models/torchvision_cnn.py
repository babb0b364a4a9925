"""Builders for any torchvision ('torchvision') or timm ('timm') classification model, randomly initialised.

``model.kwargs`` are passed on to ``torchvision.models.get_model`` / ``timm.create_model``.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from torch import nn

from .. import _compat  # noqa: F401  (must run before torchvision is imported)
from ..errors import ConfigError
from .registry import (IMAGENET_MEAN, IMAGENET_STD, Preprocess, imagenet_preprocess, kwargs_from,
                       num_classes_from, register_model)


def _name(cfg: Mapping[str, Any], kind: str) -> str:
    """Return ``cfg['name']``, or raise ConfigError when it is missing or not a string."""
    name = cfg.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model.name is required for model.type '{kind}' (e.g. 'resnet18')")
    return name


def _unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    """Return a one-line ConfigError for an unknown model name, listing close matches."""
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else f"{len(known)} models are available"
    return ConfigError(f"unknown {kind} model {name!r}; {hint}")


# Architectures of the published PTQ tables that torchvision does not name; built with its own classes.
def _regnet_x_600mf(num_classes: int, kwargs: dict) -> nn.Module:
    """RegNetX-600MF with the pycls model-zoo parameters (depth 16, w0 48, wa 36.97, wm 2.24, group width 24)."""
    from torchvision.models.regnet import BlockParams, RegNet

    params = BlockParams.from_init_params(depth=16, w_0=48, w_a=36.97, w_m=2.24, group_width=24)
    return RegNet(params, num_classes=num_classes, **kwargs)


def _mnasnet2_0(num_classes: int, kwargs: dict) -> nn.Module:
    """MnasNet with depth multiplier 2.0 (the MnasNet of the BRECQ/QDrop/PD-Quant tables)."""
    from torchvision.models.mnasnet import MNASNet

    return MNASNet(2.0, num_classes=num_classes, **kwargs)


EXTRA_TORCHVISION = {"regnet_x_600mf": _regnet_x_600mf, "mnasnet2_0": _mnasnet2_0}


def _extra_torchvision(name: str, num_classes: int, kwargs: dict) -> nn.Module:
    return EXTRA_TORCHVISION[name](num_classes, kwargs)


@register_model("torchvision")
def build_torchvision(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (randomly initialised torchvision classifier ``cfg['name']``, resize 256 / crop 224 ImageNet preprocessing)."""
    import torchvision

    name = _name(cfg, "torchvision")
    known = sorted(torchvision.models.list_models(module=torchvision.models) + list(EXTRA_TORCHVISION))
    if name not in known:
        raise _unknown("torchvision", name, known)
    kwargs = kwargs_from(cfg)
    try:
        if name in EXTRA_TORCHVISION:
            model = _extra_torchvision(name, num_classes_from(cfg), kwargs)
        else:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes_from(cfg), **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs not accepted by torchvision {name}: {exc}") from None
    return model, imagenet_preprocess()


def timm_preprocess(pretrained_cfg: Mapping[str, Any] | None) -> Preprocess:
    """Return the preprocessing dict implied by a timm ``pretrained_cfg`` (ImageNet default if absent)."""
    if not pretrained_cfg or "input_size" not in pretrained_cfg:
        return imagenet_preprocess()
    crop = int(pretrained_cfg["input_size"][-1])
    crop_pct = float(pretrained_cfg.get("crop_pct") or 0.875)
    return imagenet_preprocess(
        resize=int(crop / crop_pct), crop=crop,
        interpolation=pretrained_cfg.get("interpolation") or "bilinear",
        mean=tuple(pretrained_cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(pretrained_cfg.get("std") or IMAGENET_STD))


@register_model("timm")
def build_timm(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (randomly initialised timm model ``cfg['name']``, preprocessing from its pretrained_cfg)."""
    import timm

    name = _name(cfg, "timm")
    if not timm.is_model(name):
        raise _unknown("timm", name, timm.list_models())
    kwargs = kwargs_from(cfg)
    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes_from(cfg), **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs not accepted by timm {name}: {exc}") from None
    pcfg = getattr(model, "pretrained_cfg", None)
    return model, timm_preprocess(dict(pcfg) if pcfg else None)
