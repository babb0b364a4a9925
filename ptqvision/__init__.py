"""ptqvision: post-training quantization of vision models (AdaRound, BRECQ, QDrop, PD-Quant, PTQ4SAM)."""
from . import _compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"
