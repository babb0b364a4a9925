"""Log2 quantizer for post-softmax attention maps, with PTQ4SAM's adaptive granularity (AGQ).

For A in [0, 1] (REFERENCE.md sections 1 and 5): A is clamped to >= 1e-20, q = round(−τ·log2(A/s)) and
Â = s·2^(−q/τ) for 0 <= q <= 2^b − 1, Â = 0 where q >= 2^b (a tiny value is zeroed, not clamped to
the last level) and Â = s where q < 0. One scale s for the whole tensor (all heads, the whole batch).

τ is 1 (plain log2), 2 (RepQ-ViT's log√2) or searched in {1, 2, 4} (AGQ). Calibration searches s per
batch and per candidate τ so that the error *after* the product with the partner V, mean |Â·V − A·V|^p,
is least; the τ with the least total error wins and s is the mean of its per-batch optima.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import ConfigError, InvariantError
from ..registry import QUANTIZERS
from .base import SteppedQuantizer
from .functional import drop_select

#: A is clamped to at least this before the logarithm (PTQ4SAM's value)
MIN_VALUE = 1e-20
#: τ of each mode; 'agq' searches all of them
MODE_TAUS: dict[str, tuple[int, ...]] = {"log2": (1,), "log_sqrt2": (2,), "agq": (1, 2, 4)}
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...


def _compute_dtype(x: torch.Tensor) -> torch.Tensor:
    # log2 of half-precision maps loses whole codes (and 1e-20 underflows to 0): compute in float32
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def log2_levels(x: torch.Tensor, scale: torch.Tensor | float, tau: float, qmax: int,
                need_inside: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (m, inside) with Â = s·m: m = 2^(−q/τ) where 0 <= q <= qmax, 1 where q < 0, 0 where q > qmax;
    ``inside`` is the 0/1 mask of 0 <= q <= qmax (None unless ``need_inside``). Both are float32 or x's dtype
    (at least float32). Only float arithmetic, no bool tensors: on the CPU a comparison or a masked fill costs
    several times an arithmetic pass, and q is an integer, so clamp(qmax + 1 − q, 0, 1) is the 0/1 mask of
    q <= qmax."""
    xf = _compute_dtype(x)
    q = torch.log2(xf.clamp(min=MIN_VALUE) / scale).mul_(-tau).round_()
    kept = (qmax + 1 - q).clamp_(0.0, 1.0)  # 0 where q > qmax: the value is zeroed, not clamped
    inside = (q + 1).clamp_(0.0, 1.0).mul_(kept) if need_inside else None  # q >= 0 and q <= qmax
    m = torch.exp2(q.clamp_(min=0.0).div_(-tau)).mul_(kept)
    return m, inside


def log2_fake_quantize(x: torch.Tensor, scale: torch.Tensor | float, tau: float, qmax: int) -> torch.Tensor:
    """Return Â (no gradient bookkeeping), in x's dtype; see :func:`log2_levels` for the levels."""
    m, _ = log2_levels(x, scale, tau, qmax, need_inside=False)
    return m.mul_(scale).to(x.dtype)


class _Log2FakeQuant(torch.autograd.Function):
    """Â = s·m(x, s) with gradients: dÂ/dx = 1 where 0 <= q <= qmax and 0 elsewhere (the clamped-STE
    choice of the uniform quantizer: a value above s or one zeroed gets no gradient), and dÂ/ds = m,
    i.e. the rounded code q is held constant (2^(−q/τ) inside, 1 where q < 0, 0 where zeroed)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, tau: float, qmax: int) -> torch.Tensor:
        m, inside = log2_levels(x, scale, tau, qmax, need_inside=ctx.needs_input_grad[0])
        out = (m * scale).to(x.dtype)
        ctx.save_for_backward(m if ctx.needs_input_grad[1] else None,
                              inside if ctx.needs_input_grad[0] else None)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        m, inside = ctx.saved_tensors
        grad_x = grad * inside.to(grad.dtype) if inside is not None else None
        grad_s = None
        if m is not None:
            grad_s = torch.dot(grad.reshape(-1).to(m.dtype), m.reshape(-1)).reshape(1)
        return grad_x, grad_s, None, None


def bounded_search(f: Callable[[float], float], lo: float, hi: float, evals: int = 36,
                   grid: int = 12) -> tuple[float, float]:
    """Return (x, f(x)), the least value of ``f`` found on [lo, hi] (0 < lo <= hi) with ``evals`` calls.

    The search runs in log space (the error of a log quantizer repeats roughly every 1/τ octave of s, so
    log space treats every part of the two-decade bracket alike): ``grid`` evenly spaced points first,
    then a golden-section search between the neighbours of the best one with the remaining calls. The
    grid makes it robust to the ripples that would trap a plain golden-section (or Brent) search in a
    local minimum far from the best; the best point seen anywhere is returned.
    """
    if not 0.0 < lo <= hi:
        raise ValueError(f"bounded_search needs 0 < lo <= hi, got [{lo}, {hi}]")
    if lo == hi:
        return lo, f(lo)
    grid = max(3, min(grid, evals))
    a_log, b_log = math.log(lo), math.log(hi)
    points = [a_log + (b_log - a_log) * i / (grid - 1) for i in range(grid)]
    values = [f(math.exp(u)) for u in points]
    i = min(range(grid), key=values.__getitem__)
    best_u, best_f = points[i], values[i]
    a, b = points[max(i - 1, 0)], points[min(i + 1, grid - 1)]
    left = evals - grid
    if left < 2:
        return math.exp(best_u), best_f
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(math.exp(c)), f(math.exp(d))
    left -= 2
    for u, fu in ((c, fc), (d, fd)):
        if fu < best_f:
            best_u, best_f = u, fu
    while left > 0:
        if fc <= fd:  # the minimum is in [a, d]
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(math.exp(c))
            u, fu = c, fc
        else:  # the minimum is in [c, b]
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(math.exp(d))
            u, fu = d, fd
        left -= 1
        if fu < best_f:
            best_u, best_f = u, fu
    return math.exp(best_u), best_f


class Log2Search:
    """Streamed AGQ calibration state: for each batch and each candidate τ, the scale that minimises
    mean |Â·V − A·V|^p (or mean |Â − A|^p without V) over [min(0.1, 0.01·max A), max A].

    Memory is bounded: per τ only the running error sum and the per-batch optimal scales are kept.
    Cost is bounded by ``max_rows``: at most that many query rows of A (with their V) enter the search
    of a batch, sampled with a seeded generator: if the flattened leading dims (batch·heads) alone exceed
    it, ``max_rows`` of them are drawn, one query row each; otherwise all of them with the same
    ``max_rows // leading`` query rows. ``max A`` (the bracket) is taken over the whole tensor.
    ``max_rows=None`` searches every row.
    """

    def __init__(self, taus: tuple[int, ...], bits: int, p: float = 2.4, max_rows: int | None = 4096,
                 evals: int = 36, seed: int = 0, **_: object) -> None:
        # unknown keyword arguments are ignored, as the range observers do (generic calibration code may
        # pass options meant for them, e.g. max_samples)
        self.taus = taus
        self.qmax = 2 ** bits - 1
        self.p = p
        self.max_rows = max_rows
        self.evals = evals
        self.generator = torch.Generator().manual_seed(seed)
        self.error_sums: dict[int, float] = {t: 0.0 for t in taus}
        self.scales: dict[int, list[float]] = {t: [] for t in taus}
        self.batches = 0
        self.with_partner = 0

    def _rows(self, a: torch.Tensor, v: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return A as (L, n, Nk) float rows and V as (L, Nk, d) (or None), sampled to <= max_rows rows."""
        if a.dim() < 2:
            raise ValueError(f"an attention map has at least 2 dims (..., queries, keys), got {tuple(a.shape)}")
        if v is not None:
            if v.dim() < 2 or v.shape[-2] != a.shape[-1]:
                raise ValueError(f"partner V {tuple(v.shape)} does not match attention map {tuple(a.shape)}: "
                                 "expected (..., keys, dim)")
            lead = torch.broadcast_shapes(a.shape[:-2], v.shape[:-2])
            a = a.expand(*lead, *a.shape[-2:])
            v = v.expand(*lead, *v.shape[-2:]).reshape(-1, *v.shape[-2:])
        a = a.reshape(-1, *a.shape[-2:])
        leading, n_q = a.shape[0], a.shape[1]
        if self.max_rows is not None and leading * n_q > self.max_rows:
            if leading > self.max_rows:
                pick = torch.randperm(leading, generator=self.generator)[:self.max_rows].sort().values
                pick = pick.to(a.device)
                a = a[pick]
                v = v[pick] if v is not None else None
            k = max(1, self.max_rows // a.shape[0])
            if k < n_q:
                rows = torch.randperm(n_q, generator=self.generator)[:k].sort().values.to(a.device)
                a = a[:, rows]
        return a.float(), (v.float() if v is not None else None)

    @torch.no_grad()
    def update(self, a: torch.Tensor, v: torch.Tensor | None = None) -> None:
        """Search every candidate τ on one batch and accumulate its least error and its scale."""
        a, v = a.detach(), (v.detach() if v is not None else None)
        hi = max(float(a.max()), 1e-12)  # a map of zeros still gets a valid (irrelevant) bracket
        lo = min(0.1, 0.01 * hi)
        rows, v_rows = self._rows(a, v)
        target = rows if v_rows is None else torch.matmul(rows, v_rows)
        p = self.p

        for tau in self.taus:
            def error(s: float, tau: int = tau) -> float:
                aq = log2_fake_quantize(rows, s, float(tau), self.qmax)
                out = aq if v_rows is None else torch.matmul(aq, v_rows)
                return float(out.sub_(target).abs_().pow_(p).mean())

            s, err = bounded_search(error, lo, hi, self.evals)
            self.error_sums[tau] += err
            self.scales[tau].append(s)
        self.batches += 1
        self.with_partner += v is not None

    def result(self) -> tuple[int, float, dict[int, float]]:
        """Return (τ with the least total error, the mean of its per-batch scales, total error per τ)."""
        if self.batches == 0:
            raise InvariantError("a log2 quantizer saw no data during calibration (is it on a dead branch?)")
        tau = min(self.taus, key=lambda t: (self.error_sums[t], t))  # ties: the smaller τ (smaller table)
        scale = sum(self.scales[tau]) / len(self.scales[tau])
        return tau, scale, dict(self.error_sums)


@QUANTIZERS.register_module(name="log2")
class Log2Quantizer(SteppedQuantizer):
    """Per-tensor log2 fake quantizer of post-softmax attention maps (see the module docstring).

    States like :class:`UniformQuantizer`: *observing* (pass-through while :class:`Log2Search` records),
    *calibrated* (quantizes), *disabled* (identity); ``drop_prob`` < 1 applies QDrop. ``scale`` is a
    parameter frozen by default (reconstruction may learn it), ``tau`` and ``calibrated`` are persisted
    buffers. ``forward(A, partner=V)`` takes V, the tensor A multiplies, for the calibration search.
    ``max_rows`` and ``evals`` bound the search cost per batch (see :class:`Log2Search`).
    """

    kind = "log2"
    needs_partner = True

    def __init__(self, bits: int = 4, mode: str = "agq", p: float = 2.4, max_rows: int | None = 4096,
                 evals: int = 36, seed: int = 0) -> None:
        super().__init__(bits)
        if mode not in MODE_TAUS:
            raise ConfigError(f"log2 quantizer mode must be one of {sorted(MODE_TAUS)}, got {mode!r}")
        if not (isinstance(p, (int, float)) and p > 0):
            raise ConfigError(f"log2 quantizer error exponent p must be > 0, got {p!r}")
        if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
            raise ConfigError(f"log2 quantizer max_rows must be a positive integer or None, got {max_rows!r}")
        self.mode = mode
        self.p = float(p)
        self.search_kwargs = {"max_rows": max_rows, "evals": evals, "seed": seed}
        first_tau = MODE_TAUS[mode][0]
        self.register_buffer("tau", torch.tensor(float(first_tau)))
        self._tau = float(first_tau)
        #: what the last calibration found: {"tau", "scale", "errors": {τ: total error}, "batches", "with_partner"}
        self.search_record: dict | None = None

    @property
    def chosen_tau(self) -> int | None:
        """Return the τ the quantizer uses (searched for 'agq'), or None before calibration."""
        return int(self._tau) if self.is_calibrated else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._tau = float(self.tau)  # host-side mirror, like the calibrated flag

    # --- calibration -------------------------------------------------------------------------
    def start_observing(self, **observer_kwargs: object) -> None:
        """Enter pass-through mode with a fresh search (``observer_kwargs`` override max_rows/evals/seed)."""
        kwargs = {**self.search_kwargs, **observer_kwargs}
        self.observer = Log2Search(MODE_TAUS[self.mode], self.bits, self.p, **kwargs)

    def finish_observing(self) -> None:
        """Keep the τ with the least total error and the mean of its per-batch scales; leave observing mode."""
        if self.observer is None:
            raise RuntimeError("finish_observing() without start_observing()")
        search, self.observer = self.observer, None
        tau, scale, errors = search.result()
        with torch.no_grad():
            self.scale.fill_(scale)
            self.tau.fill_(float(tau))
        self._tau = float(tau)
        self.search_record = {"tau": tau, "scale": scale, "errors": errors, "batches": search.batches,
                              "with_partner": search.with_partner}
        self._set_calibrated(True)

    # --- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, partner: torch.Tensor | None = None) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.observer is not None:
            self.observer.update(x, partner)
            return x
        if not self._ready:
            raise InvariantError("log2 quantizer used before calibration")
        if torch.is_grad_enabled() and (x.requires_grad or self.scale.requires_grad):
            xq = _Log2FakeQuant.apply(x, self.scale, self._tau, self.qmax)
        else:
            xq = log2_fake_quantize(x, self.scale.detach(), self._tau, self.qmax)
        if self.drop_prob < 1.0:
            xq = drop_select(x, xq, self.drop_prob)
        return xq

    def describe(self) -> dict:
        """Return the placement record of this quantizer (the searched τ is ``chosen_tau``, not here)."""
        return {"type": self.kind, "bits": self.bits, "granularity": "tensor", "symmetric": False,
                "observer": f"{self.mode}-search", "mode": self.mode}

    def extra_repr(self) -> str:
        tau = self.chosen_tau
        return f"bits={self.bits}, mode={self.mode}, p={self.p}" + (f", tau={tau}" if tau is not None else "")
