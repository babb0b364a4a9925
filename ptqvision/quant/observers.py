"""Range observers: they watch tensors during calibration and return quantization parameters.

Observers are plain objects, not modules: they exist only while a quantizer is calibrating, so they
never end up in a state dict. Every search is vectorised over channels.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..registry import OBSERVERS as OBSERVER_REGISTRY
from .functional import fake_quantize, qparams_from_range


def _as_rows(x: torch.Tensor, ch_axis: int | None) -> torch.Tensor:
    """Return x as a (C, N) matrix: one row per channel, or a single row for per-tensor."""
    if ch_axis is None:
        return x.reshape(1, -1)
    return x.transpose(0, ch_axis).reshape(x.shape[ch_axis], -1)


class MinMaxObserver:
    """Running minimum and maximum; the range is used as is."""

    name = "minmax"

    def __init__(self, ch_axis: int | None = None, **_: object) -> None:
        self.ch_axis = ch_axis
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = _as_rows(x.detach().float(), self.ch_axis)
        return rows.amin(dim=1), rows.amax(dim=1)

    def update(self, x: torch.Tensor) -> None:
        lo, hi = self._batch_range(x)
        self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)

    def _require_data(self) -> None:
        if self.lo is None:
            raise RuntimeError("observer saw no data")

    def qparams(self, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (scale, zero_point), one entry per channel (or one for per-tensor)."""
        self._require_data()
        return qparams_from_range(self.lo, self.hi, bits, symmetric)


class AvgMinMaxObserver(MinMaxObserver):
    """Average over batches of each batch's minimum and maximum (PTQ4SAM's activation ranges)."""

    name = "avg_minmax"

    def __init__(self, ch_axis: int | None = None, **_: object) -> None:
        super().__init__(ch_axis)
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        lo, hi = self._batch_range(x)
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo = self.lo + (lo - self.lo) / (self.count + 1)
            self.hi = self.hi + (hi - self.hi) / (self.count + 1)
        self.count += 1


class LpObserver(MinMaxObserver):
    """BRECQ's Lp range search: shrink [min, max] by r = 1 − 0.01·i, i = 0..79, keep the best r.

    The error of a candidate is mean |x − Q(x)|^p per channel (p = 2.4 by default). With
    ``max_samples=None`` (weights) every value is searched. Otherwise (activations) the observer keeps
    the exact running min/max and a seeded uniform reservoir sample of at most ``max_samples`` values
    per quantizer, on the CPU, so memory does not grow with the calibration set.
    """

    name = "lp"

    def __init__(self, ch_axis: int | None = None, p: float = 2.4, num_candidates: int = 80,
                 max_samples: int | None = 1 << 20, seed: int = 0, **_: object) -> None:
        super().__init__(ch_axis)
        self.p = p
        self.num_candidates = num_candidates
        self.max_samples = max_samples
        self.generator = torch.Generator().manual_seed(seed)
        self.samples: list[torch.Tensor] = []
        self.reservoir: torch.Tensor | None = None
        self.seen = 0

    def update(self, x: torch.Tensor) -> None:
        super().update(x)
        rows = _as_rows(x.detach().float(), self.ch_axis)
        if self.max_samples is None:
            self.samples.append(rows)
            return
        self._reservoir_add(rows)

    def _reservoir_add(self, rows: torch.Tensor) -> None:
        """Keep a uniform sample of columns over everything seen (Algorithm R, vectorised)."""
        k = max(1, self.max_samples // rows.shape[0])
        n = rows.shape[1]
        if n > k:  # a batch larger than the reservoir: pre-sample it, weighting it as n columns
            idx = torch.randint(n, (k,), generator=self.generator).to(rows.device)  # O(k), not O(n)
            rows, weight = rows[:, idx], n
        else:
            weight = n
        rows = rows.cpu()
        if self.reservoir is None or self.reservoir.shape[1] < k:
            take = k if self.reservoir is None else k - self.reservoir.shape[1]
            head, rows = rows[:, :take], rows[:, take:]
            self.reservoir = head if self.reservoir is None else torch.cat([self.reservoir, head], dim=1)
        if rows.shape[1]:
            # each incoming column replaces a random slot with probability k / (columns seen so far)
            m = rows.shape[1]
            seen_after = self.seen + weight - m + torch.arange(1, m + 1, dtype=torch.float64)
            slot = torch.floor(torch.rand(m, generator=self.generator, dtype=torch.float64) * seen_after).long()
            scatter_latest(self.reservoir, slot, rows)
        self.seen += weight

    def qparams(self, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._require_data()
        data = torch.cat(self.samples, dim=1) if self.max_samples is None else self.reservoir.to(self.lo.device)
        if data.shape[0] == 1 and data.shape[1] > 4 * HIST_BINS:
            values, weights = histogram(data[0], self.lo[0], self.hi[0])
            return lp_search(values[None], self.lo, self.hi, bits, symmetric, self.p, self.num_candidates,
                             weights=weights[None])
        return lp_search(data, self.lo, self.hi, bits, symmetric, self.p, self.num_candidates)


def scatter_latest(target: torch.Tensor, slot: torch.Tensor, source: torch.Tensor) -> None:
    """For each column j of ``source`` in order with slot[j] < target columns, set target[:, slot[j]]:
    the latest column wins. Decided explicitly, because an indexed assignment with repeated indices
    has no defined winner and made calibration differ from run to run."""
    k = target.shape[1]
    keep = slot < k
    cols = torch.arange(slot.numel(), device=slot.device)
    winner = torch.full((k,), -1, dtype=torch.long, device=slot.device)
    winner = winner.scatter_reduce(0, slot[keep], cols[keep], "amax")
    filled = winner >= 0
    target[:, filled] = source[:, winner[filled]]


HIST_BINS = 4096


def histogram(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
              bins: int = HIST_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (bin centres, counts) of ``x`` over [lo, hi]; a search on it costs O(bins), not O(numel)."""
    lo_f, hi_f = float(lo), float(hi)
    if hi_f <= lo_f:
        return x[:1].clone(), torch.ones(1, dtype=x.dtype, device=x.device)
    counts = torch.histc(x, bins=bins, min=lo_f, max=hi_f)
    width = (hi_f - lo_f) / bins
    centres = lo_f + width * (torch.arange(bins, dtype=x.dtype, device=x.device) + 0.5)
    keep = counts > 0
    return centres[keep], counts[keep]


def lp_search(rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool,
              p: float = 2.4, num_candidates: int = 80, weights: torch.Tensor | None = None,
              max_elements: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (scale, zero_point) per row of ``rows`` whose clipped range minimises mean |Δ|^p.

    ``weights`` (same shape as ``rows``) turns the mean into a weighted mean, for histogram input.
    Candidates are evaluated in chunks of ratios, each chunk vectorised over rows and values.
    """
    qmax = 2 ** bits - 1
    ratios = 1.0 - 0.01 * torch.arange(num_candidates, device=rows.device, dtype=rows.dtype)
    chunk = max(1, min(num_candidates, max_elements // max(rows.numel(), 1)))
    best_err = torch.full_like(lo, math.inf)
    best_scale, best_zp = qparams_from_range(lo, hi, bits, symmetric)
    for start in range(0, num_candidates, chunk):
        r = ratios[start:start + chunk].view(-1, 1)  # (R, 1)
        scale, zp = qparams_from_range(r * lo, r * hi, bits, symmetric)  # (R, C)
        xq = fake_quantize(rows.unsqueeze(0), scale.unsqueeze(-1), zp.unsqueeze(-1), qmax)
        err = (xq - rows.unsqueeze(0)).abs().pow(p)  # (R, C, N)
        err = err.mean(dim=-1) if weights is None else (err * weights).sum(dim=-1) / weights.sum(dim=-1)
        err_min, arg = err.min(dim=0)
        better = err_min < best_err
        best_err = torch.where(better, err_min, best_err)
        pick = arg.unsqueeze(0)
        best_scale = torch.where(better, scale.gather(0, pick).squeeze(0), best_scale)
        best_zp = torch.where(better, zp.gather(0, pick).squeeze(0), best_zp)
    return best_scale, best_zp


for _cls in (MinMaxObserver, AvgMinMaxObserver, LpObserver):
    OBSERVER_REGISTRY.register_module(name=_cls.name, module=_cls)
OBSERVERS = OBSERVER_REGISTRY.module_dict  # name -> class, including observers users register


def build_observer(name: str, ch_axis: int | None, **kwargs: object) -> MinMaxObserver:
    """Return a fresh observer of the given registered name."""
    if name not in OBSERVERS:
        raise ConfigError(f"unknown observer '{name}'; choose one of {sorted(OBSERVERS)}")
    return OBSERVERS[name](ch_axis=ch_axis, **kwargs)
