"""Model builders (``build_model(cfg)`` returns the full-precision model and its default preprocessing) and
model adapters (one per family: placement, full-precision entries, calibration, units)."""
from .. import _compat  # noqa: F401  (must run before torchvision is imported)
from .registry import build_model, list_models, register_model
from . import efficientnet_lite, mobilenet_v2_folded, sam, torchvision_cnn, vit_mnist  # noqa: F401,E402  (builders)
from .adapters import ModelAdapter, adapter_for, get_adapter  # noqa: E402
from . import sam_adapter, vit  # noqa: F401,E402  (register the sam and vit adapters)

__all__ = ["build_model", "list_models", "register_model", "ModelAdapter", "adapter_for", "get_adapter"]
