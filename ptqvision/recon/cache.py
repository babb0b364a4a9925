"""Where cached unit inputs and targets live: on the compute device, in (pinned) CPU memory, in fp32 or
fp16. ``auto`` picks the fastest placement whose estimated peak fits in the memory that is free."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError

CACHE_MODES = ("auto", "device", "device_fp16", "cpu", "cpu_fp16")
# Fraction of the free memory the cache may take (the rest is for the unit's forward/backward).
MEMORY_FRACTION = 0.6


@dataclass(frozen=True)
class CachePolicy:
    """Storage device and dtype of cached activations; ``pinned`` for CPU storage feeding a GPU."""

    device: torch.device
    dtype: torch.dtype
    pinned: bool = False

    def describe(self) -> str:
        where = "pinned cpu" if self.pinned else str(self.device)
        return f"{where} {str(self.dtype).replace('torch.', '')}"


def free_memory(device: torch.device) -> int:
    """Return the bytes free on ``device`` (for the CPU: the memory the OS reports available)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def choose_policy(mode: str, compute: torch.device, fp32_bytes: int) -> CachePolicy:
    """Return the cache placement for ``mode`` given the estimated fp32 peak size of the cache."""
    if mode not in CACHE_MODES:
        raise ConfigError(f"recon.cache must be one of {CACHE_MODES}, got {mode!r}")
    cpu, gpu = torch.device("cpu"), compute.type == "cuda"
    explicit = {
        "device": CachePolicy(compute, torch.float32),
        "device_fp16": CachePolicy(compute, torch.float16),
        "cpu": CachePolicy(cpu, torch.float32, pinned=gpu),
        "cpu_fp16": CachePolicy(cpu, torch.float16, pinned=gpu),
    }
    if mode != "auto":
        return explicit[mode]
    order = ["device", "device_fp16"] + (["cpu", "cpu_fp16"] if gpu else [])
    for name in order:
        policy = explicit[name]
        need = fp32_bytes // (2 if policy.dtype == torch.float16 else 1)
        if need <= MEMORY_FRACTION * free_memory(policy.device):
            return policy
    raise ConfigError(f"the reconstruction cache needs about {fp32_bytes / 2**30:.1f} GiB (fp32), more than "
                      "this machine has free: use fewer calibration images (calib.num_samples)")


class CachedValue:
    """One value of the graph for all calibration samples: a [N, ...] tensor filled batch by batch, or a
    list of per-batch values for anything that is not a batch-first tensor."""

    def __init__(self, policy: CachePolicy, num_samples: int) -> None:
        self.policy = policy
        self.n = num_samples
        self.buffer: torch.Tensor | None = None
        self.chunks: list[Any] | None = None
        self.compute_dtype: torch.dtype | None = None

    def put(self, start: int, value: Any) -> None:
        is_batch_tensor = isinstance(value, torch.Tensor) and value.dim() > 0 and value.is_floating_point()
        if self.chunks is None and self.buffer is None and is_batch_tensor:
            self.compute_dtype = value.dtype
            shape = (self.n,) + tuple(value.shape[1:])
            self.buffer = torch.empty(shape, dtype=self.policy.dtype, device=self.policy.device,
                                      pin_memory=self.policy.pinned)
        if self.buffer is not None and is_batch_tensor and value.shape[1:] == self.buffer.shape[1:]:
            # blocking: a device-to-host copy must land before the CPU reads the buffer (gather)
            self.buffer[start:start + value.shape[0]].copy_(value.detach())
            return
        if self.buffer is not None:
            raise ConfigError("a cached value changed shape between calibration batches")
        self.chunks = (self.chunks or []) + [value]

    def get(self, start: int, stop: int, device: torch.device, index: int) -> Any:
        """Return samples ``start:stop`` (batch ``index`` for per-batch values) on ``device``."""
        if self.buffer is None:
            return self.chunks[index]
        return self.buffer[start:stop].to(device, non_blocking=True).to(self.compute_dtype)

    def gather(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Return the samples ``idx`` (a tensor of indices) on ``device`` in the compute dtype."""
        if self.buffer is None:
            raise ConfigError("a unit input is not a batch-first tensor; it cannot be sampled for reconstruction")
        return self.buffer.index_select(0, idx.to(self.buffer.device)).to(device, non_blocking=True) \
            .to(self.compute_dtype)

    @property
    def nbytes(self) -> int:
        return self.buffer.numel() * self.buffer.element_size() if self.buffer is not None else 0
