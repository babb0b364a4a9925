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
            return self.search(values[None], self.lo, self.hi, bits, symmetric, self.p, self.num_candidates,
                               weights=weights[None])
        return self.search(data, self.lo, self.hi, bits, symmetric, self.p, self.num_candidates)

    @staticmethod
    def search(rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool, p: float,
               num_candidates: int, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (scale, zero_point) per row: the range search of this observer (BRECQ's Lp search)."""
        return lp_search(rows, lo, hi, bits, symmetric, p, num_candidates, weights=weights)


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


class MseObserver(LpObserver):
    """QDrop/PD-Quant's MSE observer (REFERENCE.md section 1): 100 candidate ranges, each with every zero
    point when the data has both signs; the candidate with the least mean |x − Q(x)|^p (p = 2.4) wins.

    Same data handling as :class:`LpObserver` (every value for weights, a seeded reservoir sample, or its
    histogram per tensor, for activations); only the search differs (:func:`mse_search`).
    """

    name = "qdrop_mse"

    def __init__(self, ch_axis: int | None = None, p: float = 2.4, num_candidates: int = 100,
                 max_samples: int | None = 1 << 20, seed: int = 0, **_: object) -> None:
        super().__init__(ch_axis, p, num_candidates, max_samples, seed)

    @staticmethod
    def search(rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool, p: float,
               num_candidates: int, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (scale, zero_point) per row from :func:`mse_search`."""
        return mse_search(rows, lo, hi, bits, symmetric, p, num_candidates, weights=weights)


def mse_search(rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool = False,
               p: float = 2.4, num_candidates: int = 100, weights: torch.Tensor | None = None,
               max_elements: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (scale, zero_point) per row of ``rows`` that minimises mean |x − Q(x)|^p over QDrop's
    candidates; ``lo``/``hi`` are each row's min/max, ``weights`` (like ``rows``) make the mean weighted
    (histogram input).

    The candidates, from REFERENCE.md section 1 ("100 candidate ranges i/100·(max − min); for one-sided
    data a 1-D search, otherwise a 2-D search over range × every integer zero point"). A b-bit affine grid
    is fixed by its step s and zero point z: it spans [−z·s, (2^b − 1 − z)·s], which always holds 0. So
    [min, max] is first widened to contain 0 (as min-max calibration does), and candidate i = 1..100 is
    that range scaled by r = i/100, [r·min, r·max], whose width r·(max − min) fixes the step
    s_i = r·(max − min)/(2^b − 1). The zero point then only places the grid:
      * one-sided data (min ≥ 0 or max ≤ 0): z = 0 (resp. 2^b − 1), the placement that puts the grid on
        the data's side of 0 (any other z spends codes where there is no data): a 1-D search over i, each
        candidate exactly the clipped range [r·min, r·max];
      * two-sided data: every integer z in 0..2^b − 1 with step s_i (grids shifted anywhere from
        [0, width] to [−width, 0]): a 2-D search over i × z. i = 100 with z = round(−min/s) is min-max.
    Where the spec is open: ties go to the smaller range, then the smaller zero point (the first hit of a
    loop over i, then z); a symmetric quantizer (z fixed at 2^(b−1)) gets the 1-D search over
    [r·min, r·max] made symmetric. The decision one-/two-sided is per row (per channel for weights).

    The zero point is searched exactly by bisection, not by trying all 2^b values: with n = round(x/s),
    Q(x) = s·clamp(n, −z, 2^b − 1 − z), so as z runs over 0..2^b − 1 an element's error is s^p·|r + k|^p,
    with r = x/s − n ∈ [−½, ½] and k = min(0, n + z) + max(0, n + z − (2^b − 1)): k climbs by one per step
    of z while the element is clamped at the bottom (k < 0), stays 0 while n is in range, and climbs again
    once it is clamped at the top. |r + k|^p is convex in the integer k for p ≥ 1 and smallest at k = 0
    (|r| ≤ ½), so the sequence over z (the convex one over k with its minimum repeated) is convex, and so
    is the (weighted) mean over elements. The first minimiser of a convex sequence is the first z with
    E(z) ≤ E(z + 1), found in b halvings (2b error evaluations instead of 2^b: 16 instead of 256 at 8
    bits). Plateaus (several z clamp nothing) have bitwise equal errors, so the first of them is
    returned, as an exhaustive loop would; the tests compare with one. Vectorised over candidates and
    rows, chunked over candidates to keep at most ``max_elements`` values per temporary.
    """
    ratios = torch.arange(1, num_candidates + 1, device=rows.device, dtype=rows.dtype) / num_candidates
    two_sided = (lo < 0) & (hi > 0) if not symmetric else torch.zeros_like(lo, dtype=torch.bool)
    scale, zero_point = torch.empty_like(lo), torch.empty_like(lo)
    for mask, grid in ((~two_sided, False), (two_sided, True)):
        idx = mask.nonzero().flatten()
        if idx.numel() == 0:
            continue
        w = None if weights is None else weights[idx]
        s, z = _mse_search_rows(rows[idx], lo[idx], hi[idx], ratios, bits, symmetric, p, w, grid, max_elements)
        scale[idx], zero_point[idx] = s, z
    return scale, zero_point


def _mse_search_rows(rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, ratios: torch.Tensor, bits: int,
                     symmetric: bool, p: float, weights: torch.Tensor | None, grid: bool,
                     max_elements: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the best (scale, zero_point) per row over the candidate ratios: the zero point of each
    clipped range (``grid`` False) or the best of every zero point, by bisection (``grid`` True)."""
    qmax = 2 ** bits - 1
    x = rows.unsqueeze(0)  # (1, C, N)
    per_eval = 2 if grid else 1  # a bisection step evaluates two zero points at once
    chunk = max(1, min(ratios.numel(), max_elements // max(per_eval * rows.numel(), 1)))
    best_err = torch.full(lo.shape, math.inf, dtype=torch.float64, device=rows.device)
    best_scale, best_zp = torch.zeros_like(lo), torch.zeros_like(lo)
    for start in range(0, ratios.numel(), chunk):
        r = ratios[start:start + chunk].view(-1, 1)  # (R, 1)
        scale, zp = qparams_from_range(r * lo, r * hi, bits, symmetric)  # (R, C)
        codes = torch.round(x / scale.unsqueeze(-1))  # (R, C, N), shared by every zero point
        if grid:
            zp, err = _bisect_zero_point(codes, x, scale, bits, p, weights)
        else:
            err = _clamped_error(codes, x, scale, zp, qmax, p, weights)
        err_min, arg = err.min(dim=0)  # the first minimum: ties go to the smaller range
        better = err_min < best_err
        pick = arg.unsqueeze(0)
        best_err = torch.where(better, err_min, best_err)
        best_scale = torch.where(better, scale.gather(0, pick).squeeze(0), best_scale)
        best_zp = torch.where(better, zp.gather(0, pick).squeeze(0), best_zp)
    return best_scale, best_zp


def _clamped_error(codes: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmax: int,
                   p: float, weights: torch.Tensor | None) -> torch.Tensor:
    """Return Σ_N w·|s·clamp(codes, −z, qmax − z) − x|^p (float64) for every candidate: the error of
    s·(clamp(round(x/s) + z, 0, qmax) − z) with codes = round(x/s); ``scale``/``zero_point`` broadcast
    against ``codes`` without its last axis."""
    z = zero_point.unsqueeze(-1)
    err = torch.maximum(torch.minimum(codes, qmax - z), -z)  # clamp(codes, −z, qmax − z), 2x faster broadcast
    err = err.mul_(scale.unsqueeze(-1)).sub_(x).abs_()
    err = err.log_().mul_(p).exp_()  # |d|^p; 2x faster than pow on the CPU, and exactly 0 where d = 0
    if weights is not None:
        err.mul_(weights)
    return err.sum(dim=-1, dtype=torch.float64)


def _bisect_zero_point(codes: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, bits: int, p: float,
                       weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (first minimising zero point, its error) per candidate scale (shape (R, C)) by bisection on the
    convex error over z = 0..2^b − 1 (see :func:`mse_search`)."""
    qmax = 2 ** bits - 1
    low = torch.zeros_like(scale)
    high = torch.full_like(scale, float(qmax))
    both = scale.unsqueeze(0)
    err = None
    for _ in range(bits):  # [low, high] holds 2^b, 2^(b−1), ..., 2 zero points: always even, halved each step
        mid = torch.div(low + high, 2, rounding_mode="floor")
        e = _clamped_error(codes.unsqueeze(0), x, both, torch.stack([mid, mid + 1]), qmax, p, weights)
        left = e[0] <= e[1]  # the first minimiser is at or before mid
        high = torch.where(left, mid, high)
        low = torch.where(left, low, mid + 1)
        err = torch.where(left, e[0], e[1])  # after the last step low == high is mid or mid + 1
    return low, err


for _cls in (MinMaxObserver, AvgMinMaxObserver, LpObserver, MseObserver):
    OBSERVER_REGISTRY.register_module(name=_cls.name, module=_cls)
OBSERVERS = OBSERVER_REGISTRY.module_dict  # name -> class, including observers users register


def build_observer(name: str, ch_axis: int | None, **kwargs: object) -> MinMaxObserver:
    """Return a fresh observer of the given registered name."""
    if name not in OBSERVERS:
        raise ConfigError(f"unknown observer '{name}'; choose one of {sorted(OBSERVERS)}")
    return OBSERVERS[name](ch_axis=ch_axis, **kwargs)
