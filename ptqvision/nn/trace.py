"""torch.fx tracing with the leaf rules of ptqvision."""
from __future__ import annotations

import torch.fx as fx
from torch import nn

from ..errors import PTQError


def _timm_leaves() -> tuple[type, ...]:
    try:
        from timm.layers import _fx as timm_fx  # only if timm is installed
    except Exception:  # noqa: BLE001 - timm is optional
        return ()
    return tuple(timm_fx._leaf_modules)


class PTQTracer(fx.Tracer):
    """fx tracer whose leaves are torch.nn modules (and Conv2d/Linear subclasses), timm's no-trace
    modules and classes with ``ptq_leaf``.

    Module paths are kept in ``node.meta['nn_module_stack']`` so units can be found later.
    """

    def __init__(self) -> None:
        super().__init__()
        self.extra_leaves = _timm_leaves()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # Subclasses of Conv2d/Linear stay single nodes, so they are either swapped or refused by name.
        if getattr(type(m), "ptq_leaf", False) or isinstance(m, self.extra_leaves + (nn.Conv2d, nn.Linear)):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """Return ``model`` as a GraphModule with the original module paths; raise PTQError if untraceable."""
    tracer = PTQTracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure becomes one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PTQError(f"model {type(model).__name__} cannot be traced by torch.fx: {first}") from exc
    name = type(model).__name__
    return fx.GraphModule(tracer.root, graph, name)

