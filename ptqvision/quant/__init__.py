"""Quantization primitives: tensors in, tensors out."""
from .functional import fake_quantize, qparams_from_range, round_ste
from .observers import OBSERVERS, AvgMinMaxObserver, LpObserver, MinMaxObserver, build_observer, lp_search
from .uniform import MAX_BITS, MIN_BITS, UniformQuantizer, check_bits

__all__ = ["fake_quantize", "qparams_from_range", "round_ste", "OBSERVERS", "AvgMinMaxObserver",
           "LpObserver", "MinMaxObserver", "build_observer", "lp_search", "MAX_BITS", "MIN_BITS",
           "UniformQuantizer", "check_bits"]
