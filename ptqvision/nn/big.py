"""PTQ4SAM's Bimodal Integration (BIG, REFERENCE.md section 5): an equivalence transform for attentions whose
key activations are bimodal.

The keys of SAM's token-to-image cross-attentions can have a two-peaked distribution: some channels sit
around a positive mean, others around a negative one, so a per-tensor quantizer wastes its levels on the
gap. Multiplying channel c of both the query and the key projections by s_c = sign(mean_c(k)) leaves every
logit unchanged, since (s ⊙ q)·(s ⊙ k) = Σ_c s_c² q_c k_c = q·k, and folds the two peaks into one. It is
applied to the rows and biases of ``q_proj`` and ``k_proj``, so the full-precision output is unchanged up to
nothing at all (a sign flip is exact in floating point).

Detection, once, in full precision on the first calibration image: the first prompt's ``k_proj`` output,
flattened; a Gaussian KDE (``scipy.stats.gaussian_kde``, Scott's bandwidth) evaluated on 128 points between
its min and max; ``scipy.signal.find_peaks`` with a height of 1 % of the density's sum and a distance of 32
points; exactly two peaks means bimodal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

KDE_POINTS = 128
PEAK_HEIGHT = 0.01   # of the density's sum over the grid
PEAK_DISTANCE = 32   # grid points


@dataclass
class KeyDensity:
    """The KDE of one attention's keys: grid, density, peaks (grid indices) and whether it is bimodal."""

    grid: np.ndarray
    density: np.ndarray
    peaks: list[int] = field(default_factory=list)

    @property
    def bimodal(self) -> bool:
        return len(self.peaks) == 2

    def peak_values(self) -> list[float]:
        return [float(self.grid[i]) for i in self.peaks]


def _scipy():
    try:
        from scipy.signal import find_peaks
        from scipy.stats import gaussian_kde
    except ImportError as exc:  # pragma: no cover - the CPU setup installs it
        raise ConfigError("bimodal integration needs scipy (pip install scipy)") from exc
    return gaussian_kde, find_peaks


def key_density(keys: torch.Tensor, points: int = KDE_POINTS, max_values: int | None = None,
                seed: int = 0) -> KeyDensity:
    """Return the KDE of the flattened ``keys`` on ``points`` points between their min and max, with its peaks.

    ``max_values`` (None: all) bounds the cost with a seeded subsample for the fit; min and max are always
    those of every value.
    """
    gaussian_kde, find_peaks = _scipy()
    values = keys.detach().reshape(-1).double().cpu().numpy()
    lo, hi = float(values.min()), float(values.max())
    grid = np.linspace(lo, hi, points)
    if hi <= lo or values.size < 2:  # a constant: one (degenerate) mode
        density = np.zeros(points)
        density[0] = 1.0
        return KeyDensity(grid, density, [0])
    sample = values
    if max_values is not None and values.size > max_values:
        sample = np.random.default_rng(seed).choice(values, max_values, replace=False)
    density = gaussian_kde(sample)(grid)  # Scott's rule is scipy's default bandwidth
    peaks, _ = find_peaks(density, height=PEAK_HEIGHT * float(density.sum()), distance=PEAK_DISTANCE)
    return KeyDensity(grid, density, [int(p) for p in peaks])


def channel_signs(keys: torch.Tensor) -> torch.Tensor:
    """Return s_c = sign(mean of channel c over every other dim of ``keys`` (..., C)), with +1 where the
    mean is 0 (a sign of 0 would zero the channel)."""
    mean = keys.detach().reshape(-1, keys.shape[-1]).double().mean(dim=0)
    return torch.where(mean < 0, -1.0, 1.0).to(keys.dtype)


@torch.no_grad()
def fold_signs(q_proj: nn.Linear, k_proj: nn.Linear, signs: torch.Tensor) -> None:
    """Multiply output channel c of ``q_proj`` and ``k_proj`` (weight rows and biases) by ``signs[c]``."""
    if q_proj.weight.shape[0] != signs.numel() or k_proj.weight.shape[0] != signs.numel():
        raise ValueError(f"{signs.numel()} signs for projections of {q_proj.weight.shape[0]} and "
                         f"{k_proj.weight.shape[0]} output channels")
    for proj in (q_proj, k_proj):
        s = signs.to(proj.weight)
        proj.weight.mul_(s.view(-1, 1))
        if proj.bias is not None:
            proj.bias.mul_(s)
