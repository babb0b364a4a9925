"""Quantized modules and the module swap that builds a quantized twin."""
from .calibrate import activation_quantizers, calibrate, weight_quantizers
from .config import QuantConfig
from .fold import fold_bn_into_conv
from .modules import QUANT_LAYERS, QuantConv2d, QuantLinear, tf_same_pad
from .trace import PTQTracer, trace
from .twin import check_ready, is_residual_add, iter_quantizers, placement, quantize, unquantized_inputs

__all__ = ["activation_quantizers", "calibrate", "weight_quantizers", "QuantConfig", "fold_bn_into_conv", "QUANT_LAYERS", "QuantConv2d", "QuantLinear", "tf_same_pad",
           "PTQTracer", "trace", "check_ready", "is_residual_add", "iter_quantizers", "placement", "quantize", "unquantized_inputs"]
