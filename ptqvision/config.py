"""Experiment configs: mmengine files with ``_base_`` inheritance, checked against a schema.

Every key an experiment may set is listed in DEFAULTS; an unknown key is an error, not a silent
no-op. ``model.kwargs`` is the one free-form dict (passed to the model builder); top-level names that
start with "_" are a config file's private helper variables and are ignored.
"""
from __future__ import annotations

import copy
import difflib
import os
from typing import Any, Mapping

from .errors import ConfigError
from .nn.config import QuantConfig
from .recon.settings import ReconSettings, apply_preset

FREE = object()  # marks a value whose inner keys are not checked

DEFAULTS: dict[str, Any] = {
    "model": {"type": None, "name": None, "weights": None, "num_classes": 1000, "seed": 0, "kwargs": FREE,
              "family": "auto"},
    # task.* and data.calib/data.val keys beyond 'type' come from the chosen task (Task.defaults,
    # Task.data_defaults): see schema()
    "task": {"type": "classification"},
    "data": {
        "calib": {},
        "val": {},
        "preprocess": {"resize": None, "crop": None, "interpolation": None, "mean": None, "std": None},
        "batch_size": 64,
        "num_workers": 0,
    },
    "calib": {"num_samples": 128, "seed": 1005, "batch_size": 32},
    "quant": QuantConfig().to_dict(),
    "method": {"type": "rtn", "range_init": "default"},  # range_init: 'default' or 'original' (methods/__init__)
    "recon": ReconSettings.defaults(),
    "eval": {"fp": True, "progress": True},
    "device": "auto",
    "seed": 1005,
    "note": None,  # shown with the results and recorded in results.json (e.g. "an MNIST toy, not ImageNet")
}
DEFAULTS["quant"]["overrides"] = FREE


def _check_keys(cfg: Mapping, schema: Mapping, prefix: str = "") -> None:
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{name}'{hint}")
        sub = schema[key]
        if isinstance(sub, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{name}' must be a dict, got {type(value).__name__}")
            _check_keys(value, sub, f"{name}.")


def _default(key: str, value: Any) -> Any:
    """Return the default of a key the config leaves out (a free value starts empty, at any depth)."""
    if value is FREE:
        return {} if key == "kwargs" else []
    if isinstance(value, dict):
        return {k: _default(k, v) for k, v in value.items()}
    return copy.deepcopy(value)


def _merge(defaults: Any, cfg: Any) -> Any:
    if defaults is FREE:
        return copy.deepcopy(cfg)
    if isinstance(defaults, dict) and isinstance(cfg, Mapping):
        out = {k: _default(k, v) for k, v in defaults.items()}
        for k, v in cfg.items():
            out[k] = _merge(defaults.get(k), v)
        return out
    return copy.deepcopy(cfg)


def schema(task_type: str) -> dict:
    """Return the config schema (with defaults) for an experiment of task ``task_type``: DEFAULTS with the
    task's own ``task.*`` keys and its ``data.calib`` / ``data.val`` keys filled in."""
    from . import tasks  # noqa: F401  (registers the built-in tasks)
    from .registry import TASKS, lookup

    task_cls = lookup(TASKS, task_type, "task.type")
    out = copy.deepcopy(DEFAULTS, {id(FREE): FREE})  # FREE is a marker: keep its identity
    out["task"] = {"type": task_type, **copy.deepcopy(task_cls.defaults)}
    for split in ("calib", "val"):
        out["data"][split] = copy.deepcopy(task_cls.data_defaults)
    return out


def resolve(cfg: Mapping) -> dict:
    """Return ``cfg`` checked against the schema and completed with defaults."""
    task = cfg.get("task", {})
    task_type = task.get("type", DEFAULTS["task"]["type"]) if isinstance(task, Mapping) else None
    if not isinstance(task_type, str):
        raise ConfigError(f"task.type must be a registered task name, got {task_type!r}")
    defaults = schema(task_type)
    _check_keys(cfg, defaults)
    out = _merge(defaults, cfg)
    QuantConfig.from_any(out["quant"])  # validates bits, observers, overrides
    if not out["model"]["type"]:
        raise ConfigError("model.type is required")
    from . import models, tasks  # noqa: F401  (registers the built-in adapters and tasks)
    from .registry import ADAPTERS, lookup

    if out["model"]["family"] != "auto":
        lookup(ADAPTERS, out["model"]["family"], "model.family")
    minimum = {"calib.num_samples": 1, "calib.batch_size": 1, "recon.batch_size": 1, "data.batch_size": 1,
               "recon.iters": 0, "seed": 0, "calib.seed": 0, "model.seed": 0, "data.num_workers": 0}
    for key, low in minimum.items():
        section, _, name = key.rpartition(".")
        value = out[section][name] if section else out[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "a positive" if low else "a non-negative"
            raise ConfigError(f"{key} must be {kind} integer, got {value!r}")
    for key in ("eval.fp", "eval.progress"):
        section, name = key.split(".")
        if not isinstance(out[section][name], bool):
            raise ConfigError(f"{key} must be true or false, got {out[section][name]!r}")
    from .methods import PRESETS, QUANT_DEFAULTS, QUANT_PRESETS, get_method

    get_method(out["method"]["type"])
    _apply_range_init(out)
    for key, default in QUANT_DEFAULTS.items():
        if out["quant"][key] is None:
            out["quant"][key] = QUANT_PRESETS.get(out["method"]["type"], {}).get(key, default)
    if out["method"]["type"] in PRESETS:
        out["recon"] = apply_preset(out["recon"], PRESETS[out["method"]["type"]])
        ReconSettings.from_dict(out["recon"])
    device = str(out["device"])
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {out['device']!r}")
    return out


def _apply_range_init(out: dict) -> None:
    """Set, in place, the quant/recon keys that ``method.range_init`` stands for; raise ConfigError on a bad
    value, a method without an original initialisation, or a key the config set to something else."""
    from .methods import ORIGINAL_RANGE_INITS, RANGE_INITS

    mode, method = out["method"]["range_init"], out["method"]["type"]
    if mode not in RANGE_INITS:
        raise ConfigError(f"method.range_init must be one of {RANGE_INITS}, got {mode!r}")
    if mode == "default":
        return
    if method not in ORIGINAL_RANGE_INITS:
        raise ConfigError(f"method.range_init='original' is defined for method.type {sorted(ORIGINAL_RANGE_INITS)}, "
                          f"not {method!r}")
    for section, values in ORIGINAL_RANGE_INITS[method].items():
        for key, value in values.items():
            if out[section][key] not in (DEFAULTS[section][key], value):
                raise ConfigError(f"{section}.{key}={out[section][key]!r} contradicts method.range_init='original' "
                                  f"(which sets {value!r}); leave one of them out")
            out[section][key] = value


def _parse_value(text: str) -> Any:
    """Return a --cfg-options value: a Python literal, ``dict(...)``/``list(...)`` as in config files,
    true/false/none, or else the text itself."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:  # config-file syntax such as [dict(pattern='layer4.*', w_bits=8)]; no builtins reachable
        return eval(compile(ast.parse(text, mode="eval"), "<cfg-options>", "eval"),
                    {"__builtins__": {}}, {"dict": dict, "list": list, "tuple": tuple, "True": True,
                                           "False": False, "None": None})
    except Exception:  # noqa: BLE001 - not an expression: treat as a plain string below
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def load_config(path: str, options: list[str] | None = None) -> tuple[dict, Any]:
    """Return (resolved config dict, mmengine Config) for a config file and ``key=value`` overrides."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        from mmengine.config import Config

        mm = Config.fromfile(path)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - syntax errors, missing _base_ files, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot read config {path}: {first}") from exc
    overrides = {}
    for opt in options or []:
        if "=" not in opt:
            raise ConfigError(f"--cfg-options expects key=value, got {opt!r}")
        key, value = opt.split("=", 1)
        overrides[key.strip()] = _parse_value(value.strip())
    # Top-level names starting with "_" are the config file's own helper variables, not settings.
    raw = {k: v for k, v in mm.to_dict().items() if not k.startswith("_")}
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--cfg-options {key}: '{part}' is not a dict")
        node[parts[-1]] = value
    cfg = resolve(raw)
    return cfg, mm


def dump_config(cfg: Mapping) -> str:
    """Return the resolved config as a Python config file's text."""
    import pprint

    lines = ["# Fully resolved ptqvision config (defaults included).\n"]
    for key, value in cfg.items():
        lines.append(f"{key} = {pprint.pformat(value, sort_dicts=False, width=100)}\n")
    return "".join(lines)
