"""Registry of model builders by name, and the checkpoint loading they all share.

A builder is a function ``builder(cfg) -> (model, preprocess)`` that returns a randomly initialised
full-precision model and its default preprocessing dict. :func:`build_model` seeds the random
initialisation, then loads the weights named by ``cfg['weights']``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..registry import MODELS
from ..utils.io import load_torch_file, short_reason

Preprocess = dict[str, Any]
Builder = Callable[[Mapping[str, Any]], tuple[nn.Module, Preprocess]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_WEIGHTS_REQUIRED = "model.weights is required: a checkpoint path or 'random'"


_DEFAULT_WEIGHTS: dict[str, Callable[[], str] | None] = {}


def register_model(name: str, default_weights: Callable[[], str] | None = None) -> Callable[[Builder], Builder]:
    """Return a decorator that registers a builder under ``name`` (in the MODELS registry).

    ``default_weights``, when given, returns the checkpoint path used when ``cfg['weights']`` is None
    (it may raise ConfigError, e.g. when the package that ships the file is not installed).
    """

    def decorator(fn: Builder) -> Builder:
        existing = MODELS.module_dict.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(f"model type {name!r} is already registered")
        if existing is None:
            MODELS.register_module(name=name, module=fn)
        _DEFAULT_WEIGHTS[name] = default_weights
        return fn

    return decorator


def list_models() -> list[str]:
    """Return the registered model types, sorted."""
    return sorted(MODELS.module_dict)


def imagenet_preprocess(resize: int = 256, crop: int = 224, interpolation: str = "bilinear",
                        mean: tuple[float, ...] = IMAGENET_MEAN,
                        std: tuple[float, ...] = IMAGENET_STD) -> Preprocess:
    """Return a preprocessing dict (defaults: resize 256, crop 224, bilinear, ImageNet mean/std)."""
    return {"resize": int(resize), "crop": int(crop), "interpolation": str(interpolation),
            "mean": tuple(float(m) for m in mean), "std": tuple(float(s) for s in std)}


def num_classes_from(cfg: Mapping[str, Any]) -> int:
    """Return ``cfg['num_classes']`` (default 1000), validated."""
    n = cfg.get("num_classes", 1000)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"model.num_classes must be a positive integer, got {n!r}")
    return n


def kwargs_from(cfg: Mapping[str, Any], accepts_kwargs: bool = True) -> dict[str, Any]:
    """Return ``cfg['kwargs']`` (extra builder arguments, default {}), validated."""
    kwargs = cfg.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"model.kwargs must be a mapping, got {type(kwargs).__name__}")
    if kwargs and not accepts_kwargs:
        raise ConfigError(f"model.type {cfg.get('type')!r} takes no model.kwargs, got {', '.join(map(str, kwargs))}")
    return dict(kwargs)


def build_model(cfg: Mapping[str, Any]) -> tuple[nn.Module, Preprocess]:
    """Return (full-precision model in eval mode on CPU, its default preprocessing dict).

    ``cfg['type']`` picks the builder; ``cfg['weights']`` is a checkpoint path, 'random' (seeded
    random init, ``cfg['seed']``, default 0) or None (the builder's default source, if it has one).
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(cfg).__name__}")
    kind = cfg.get("type")
    builder = MODELS.module_dict.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ConfigError(f"unknown model.type {kind!r}; valid types: {', '.join(list_models())}")
    default_weights = _DEFAULT_WEIGHTS.get(kind)
    weights = cfg.get("weights")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(f"model.weights must be a checkpoint path, 'random' or null, got {type(weights).__name__}")
    if weights is None:
        if default_weights is None:
            raise ConfigError(_WEIGHTS_REQUIRED)
        weights = default_weights()
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"model.seed must be an integer, got {seed!r}")
    # fork_rng: building must be reproducible without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, preprocess = builder(cfg)
    if weights != "random":
        load_weights(model, os.fspath(weights))
    return model.to("cpu").eval(), dict(preprocess)


def _names(keys: list[str], limit: int = 5) -> str:
    """Return the first ``limit`` names joined by commas, with '...' when cut."""
    shown = ", ".join(keys[:limit])
    return shown + (", ..." if len(keys) > limit else "")


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Return the state dict stored at ``path`` (plain, or under 'state_dict'/'model'), 'module.' stripped."""
    obj = load_torch_file(path)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path} is not a state dict: {len(bad)} entries are not "
                              f"name -> tensor ({_names(bad)})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_weights(model: nn.Module, path: str) -> nn.Module:
    """Load the checkpoint at ``path`` into ``model`` strictly; return the model."""
    state = load_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys ({_names(missing) or '-'}), "
            f"{len(unexpected)} unexpected keys ({_names(unexpected) or '-'})")
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"checkpoint {path} does not match {type(model).__name__}: "
                              f"{len(wrong)} tensors have the wrong shape (checkpoint vs model): {_names(wrong, 3)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not load into {type(model).__name__}: {short_reason(exc)}") from None
    return model
