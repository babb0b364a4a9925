"""One registry mechanism for every buildable kind: mmengine's ``Registry``.

A config names a part by its registered name; a user adds a part with a decorator, e.g.::

    from ptqvision.registry import ADAPTERS
    @ADAPTERS.register_module(name="my_family")
    class MyAdapter(ModelAdapter): ...
"""
from __future__ import annotations

from mmengine.registry import Registry

from .errors import ConfigError

MODELS = Registry("model builder", scope="ptqvision")      # model.type -> builder(cfg) -> (model, preprocess)
ADAPTERS = Registry("model adapter", scope="ptqvision")    # model.family -> ModelAdapter class
TASKS = Registry("task", scope="ptqvision")                # task.type -> Task class
METHODS = Registry("method", scope="ptqvision")            # method.type -> method function
QUANTIZERS = Registry("quantizer", scope="ptqvision")      # quantizer kind -> Quantizer class
OBSERVERS = Registry("observer", scope="ptqvision")        # observer name -> observer class


def lookup(registry: Registry, name: str, what: str):
    """Return the part registered under ``name``; raise ConfigError naming the valid choices."""
    obj = registry.module_dict.get(name) if isinstance(name, str) else None  # .get() would import any module by that name
    if obj is None:
        raise ConfigError(f"unknown {what} {name!r}; available: {', '.join(sorted(registry.module_dict))}")
    return obj
