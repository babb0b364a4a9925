"""Quantization primitives: tensors in, tensors out."""
from .adaround import AdaRoundQuantizer, beta_schedule, rectified_sigmoid
from .functional import (drop_select, fake_quantize, fake_quantize_inplace, fake_quantize_lsq, keep_mask,
                         qparams_from_range, round_ste)
from .log2 import Log2Quantizer
from .observers import (OBSERVERS, AvgMinMaxObserver, LpObserver, MinMaxObserver, MseObserver, build_observer,
                        lp_search, mse_search)
from .uniform import MAX_BITS, MIN_BITS, UniformQuantizer, check_bits

__all__ = ["AdaRoundQuantizer", "beta_schedule", "rectified_sigmoid", "keep_mask", "drop_select", "fake_quantize",
           "fake_quantize_inplace", "fake_quantize_lsq", "qparams_from_range", "round_ste", "OBSERVERS",
           "AvgMinMaxObserver", "LpObserver", "MinMaxObserver", "MseObserver", "build_observer", "lp_search",
           "mse_search", "MAX_BITS", "MIN_BITS", "UniformQuantizer", "check_bits", "Log2Quantizer"]
