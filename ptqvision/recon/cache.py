"""Where cached unit inputs and targets live: on the compute device, in (pinned) CPU memory, in fp32 or
fp16. ``auto`` picks the fastest placement whose estimated peak fits in the memory that is free."""
from __future__ import annotations

import bisect
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


def fits_on_device(compute: torch.device, fp32_bytes: int) -> bool:
    """Return whether a cache of ``fp32_bytes`` (fp32) fits on the compute device, in fp16 at least."""
    return fp32_bytes // 2 <= MEMORY_FRACTION * free_memory(compute)


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
    """One value of the schedule for all calibration samples, filled batch by batch.

    A sample is one row of the model's first input (an image). Most values have one row per sample (a CNN's
    activations): they live in one preallocated [N, ...] buffer and are sampled with one ``index_select``.
    Others have several rows per sample (SAM: the windows of an image, the prompts of an image): they are
    kept as one tensor per calibration batch, and a sample's rows are that batch's rows (split evenly when a
    batch holds several samples). A value is decided dense or ragged by its first batch and turns ragged
    when a later batch disagrees (an image with one box, then one with three). Anything that is not a
    floating-point tensor is kept as a list of per-batch values.
    """

    def __init__(self, policy: CachePolicy, offsets: list[int]) -> None:
        self.policy = policy
        self.offsets = list(offsets)          # sample index where each calibration batch starts (+ the end)
        self.n = self.offsets[-1]
        self._batch_of = {start: i for i, start in enumerate(self.offsets[:-1])}
        self.buffer: torch.Tensor | None = None    # dense storage
        self.chunks: dict[int, torch.Tensor] | None = None  # ragged storage: batch index -> rows
        self.others: dict[int, Any] | None = None  # non-tensor values: batch index -> value
        self._dense_batches: list[int] = []
        self.compute_dtype: torch.dtype | None = None

    def _store(self, value: torch.Tensor) -> torch.Tensor:
        out = torch.empty(value.shape, dtype=self.policy.dtype, device=self.policy.device,
                          pin_memory=self.policy.pinned)
        out.copy_(value.detach())  # blocking: a device-to-host copy must land before the CPU reads it
        return out

    def _to_ragged(self) -> None:
        """Turn the dense buffer into per-batch chunks (views of it) for the batches stored so far."""
        self.chunks = {i: self.buffer[self.offsets[i]:self.offsets[i + 1]] for i in self._dense_batches}
        self.buffer = None

    def put(self, start: int, value: Any) -> None:
        """Store the value of the calibration batch that starts at sample ``start``."""
        batch = self._batch_of[start]
        count = self.offsets[batch + 1] - start
        is_tensor = isinstance(value, torch.Tensor) and value.dim() > 0 and value.is_floating_point()
        if not is_tensor or self.others is not None:
            if self.buffer is not None or self.chunks is not None:
                raise ConfigError("a cached value changed type between calibration batches")
            self.others = {**(self.others or {}), batch: value}
            return
        if self.compute_dtype is None:
            self.compute_dtype = value.dtype
            if value.shape[0] == count:
                self.buffer = torch.empty((self.n,) + tuple(value.shape[1:]), dtype=self.policy.dtype,
                                          device=self.policy.device, pin_memory=self.policy.pinned)
            else:
                self.chunks = {}
        if self.buffer is not None:
            if value.shape[0] == count and value.shape[1:] == self.buffer.shape[1:]:
                self.buffer[start:start + count].copy_(value.detach())
                self._dense_batches.append(batch)
                return
            self._to_ragged()
        self.chunks[batch] = self._store(value)

    def _cast(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        return t.to(device, non_blocking=True).to(self.compute_dtype)

    def get(self, start: int, stop: int, device: torch.device, index: int) -> Any:
        """Return calibration batch ``index`` (samples ``start:stop``) on ``device``."""
        if self.others is not None:
            return self.others[index]
        if self.buffer is not None:
            return self._cast(self.buffer[start:stop], device)
        return self._cast(self.chunks[index], device)

    def gather(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Return the rows of the samples ``idx`` (a tensor of sample indices, in that order) on ``device`` in
        the compute dtype."""
        if self.buffer is not None:
            return self._cast(self.buffer.index_select(0, idx.to(self.buffer.device)), device)
        if self.chunks is None:
            raise ConfigError("a unit input is not a batch-first tensor; it cannot be sampled for reconstruction")
        parts = []
        for j in idx.tolist():
            batch = bisect.bisect_right(self.offsets, j) - 1
            chunk = self.chunks[batch]
            count = self.offsets[batch + 1] - self.offsets[batch]
            if count == 1:
                parts.append(chunk)
                continue
            if chunk.shape[0] % count:
                raise ConfigError("a cached value has a varying number of rows per sample within a calibration "
                                  "batch: use calibration batches of one sample (calib.batch_size=1)")
            per = chunk.shape[0] // count
            k = j - self.offsets[batch]
            parts.append(chunk[k * per:(k + 1) * per])
        return self._cast(parts[0] if len(parts) == 1 else torch.cat(parts), device)

    @property
    def nbytes(self) -> int:
        if self.buffer is not None:
            return self.buffer.numel() * self.buffer.element_size()
        return sum(c.numel() * c.element_size() for c in (self.chunks or {}).values())
