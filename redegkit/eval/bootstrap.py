"""Paired bootstrap intervals over test images, exact when the resamples can be listed.

A bootstrap resample draws ``n`` of the ``n`` test images with replacement; it is a vector of
counts ``c`` (``c_i >= 0``, ``sum c = n``) whose probability is the multinomial
``n! / prod(c_i!) / n**n``. While there are at most ``max_exact`` such vectors (``C(2n-1, n)``:
35 for 4 images, 6,435 for 8, 92,378 for 10) every one is listed with its probability, so the
interval is exact and needs no seed; beyond that, ``draws`` resamples are drawn from a seeded
generator, each of probability ``1 / draws``.

*Paired*: every series (a source's per-image scores) is resampled with the same counts, so a
difference of two sources, or a ratio of differences, is computed on the same images in every
resample.

The interval is the percentile interval of the resampling distribution at ``level``: its lower end
is the smallest value ``v`` with ``P(stat <= v) >= (1 - level) / 2``, its upper end the smallest
``v`` with ``P(stat <= v) >= (1 + level) / 2``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

MAX_EXACT = 200_000
DRAWS = 20_000

__all__ = ["DRAWS", "MAX_EXACT", "Resamples", "interval", "resamples"]


@dataclass(frozen=True)
class Resamples:
    """Bootstrap resamples of ``n`` units: ``counts`` [M, n] (how often each unit is drawn) and
    their probabilities ``probs`` [M] (summing to 1); ``exact`` when every resample is listed."""

    counts: np.ndarray
    probs: np.ndarray
    exact: bool

    @property
    def n(self) -> int:
        return int(self.counts.shape[1])

    def means(self, values: np.ndarray) -> np.ndarray:
        """The mean of ``values`` ([n] or [n, S], one row a unit) in every resample: [M] or [M, S]."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape[0] != self.n:
            raise ValueError(f"{v.shape[0]} values for {self.n} resampled units")
        return (self.counts @ v) / self.n


def resamples(n: int, *, seed: int = 0, max_exact: int = MAX_EXACT, draws: int = DRAWS) -> Resamples:
    """Every bootstrap resample of ``n`` units with its probability when there are at most
    ``max_exact`` of them, else ``draws`` resamples from ``numpy``'s generator seeded with ``seed``."""
    if n < 1:
        raise ValueError("a bootstrap needs at least one unit")
    if math.comb(2 * n - 1, n) <= max_exact:
        counts = np.array(
            [np.bincount(c, minlength=n) for c in itertools.combinations_with_replacement(range(n), n)],
            dtype=np.int64,
        )
        log_fact = np.array([math.lgamma(k + 1) for k in range(n + 1)])
        log_p = math.lgamma(n + 1) - log_fact[counts].sum(axis=1) - n * math.log(n)
        return Resamples(counts, np.exp(log_p), True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.int64)
    return Resamples(counts, np.full(draws, 1.0 / draws), False)


def interval(values: np.ndarray, probs: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of a statistic whose resampled values are ``values`` [M] with
    probabilities ``probs`` [M] (see the module doc). Non-finite values (a ratio whose denominator
    vanished in some resample) make the interval undefined: (nan, nan)."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        return math.nan, math.nan
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(np.asarray(probs, dtype=np.float64)[order])
    cum /= cum[-1]
    tail = (1.0 - level) / 2.0
    eps = 1e-12  # probabilities summed in floating point: 0.025 must reach 0.025
    lo = v[int(np.searchsorted(cum, tail - eps, side="left"))]
    hi = v[min(int(np.searchsorted(cum, 1.0 - tail - eps, side="left")), len(v) - 1)]
    return float(lo), float(hi)
