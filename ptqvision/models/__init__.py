"""Model builders: ``build_model(cfg)`` returns (full-precision model, default preprocessing dict)."""
from .. import _compat  # noqa: F401  (must run before torchvision is imported)
from .registry import build_model, list_models, register_model
from . import efficientnet_lite, mobilenet_v2_folded, torchvision_cnn  # noqa: F401,E402  (register builders)

__all__ = ["build_model", "list_models", "register_model"]
