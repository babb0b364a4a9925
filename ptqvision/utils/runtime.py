"""Process-level CPU settings for the command-line tools, tests and benchmarks (never applied on import)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_cpu_allocator(threshold: int = 1 << 30) -> bool:
    """Keep large CPU tensors in the malloc heap instead of fresh mmaps; return whether it applied.

    glibc serves every allocation above its mmap threshold (at most 32 MB by default) with a new
    mapping and unmaps it on free, so each large activation costs a page fault per 4 KB: measured here,
    an EfficientNet-Lite0 forward at batch 50 spent 10 s in the kernel for 5.5 s of compute, and ran 4x
    faster with the threshold raised. No-op off glibc or with PTQVISION_MALLOC_TUNING=0.
    """
    if os.environ.get("PTQVISION_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, threshold))
