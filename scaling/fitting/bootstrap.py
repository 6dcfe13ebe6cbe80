"""Bootstrap over runs: resamples as integer weights, and percentile intervals.

A resample with replacement is a vector of counts (how often each run was drawn); a weighted objective with
those counts equals the objective on the resampled table, so a batch of resamples is a batch of weight rows
and no table is copied.
"""

from __future__ import annotations

import numpy as np


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) float64 counts of each run in each resample (every row sums to n)."""
    return ResampleStream(n, rng).counts(0, n_boot)


class ResampleStream:
    """The resamples of `resample_counts`, drawn as they are asked for: a large table's n_boot x n counts
    need not exist at once. The same rng gives the same resamples however the requests are split."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.rng = n, rng
        self.drawn = 0
        self.last = np.zeros((0, n))  # the latest resample drawn, which the next request may repeat

    def counts(self, first: int, stop: int) -> np.ndarray:
        """Counts of resamples first..stop-1, asked for in order (`first` >= the latest one drawn)."""
        if first < self.drawn - 1:
            raise ValueError(f"resample {first} was already drawn and dropped")
        k = max(0, stop - self.drawn)
        draws = self.rng.integers(0, self.n, size=(k, self.n))
        offsets = np.repeat(np.arange(k) * self.n, self.n)
        fresh = np.bincount(offsets + draws.ravel(), minlength=k * self.n).reshape(k, self.n)
        block = np.concatenate([self.last, fresh.astype(np.float64)])[first - self.drawn + len(self.last) :]
        self.drawn += k
        if block.size:
            self.last = block[-1:]
        return block[: stop - first]


def resample_groups(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified resamples: each group (e.g. compute budget) is resampled within itself, so no budget
    vanishes from a resample. Returns n_boot index arrays."""
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    return [np.concatenate([rng.choice(m, size=m.size) for m in members]) for _ in range(n_boot)]


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Central percentile interval, ignoring failed (NaN) refits; (nan, nan) when none succeeded."""
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def intervals(samples: dict[str, np.ndarray], confidence: float) -> dict[str, tuple[float, float]]:
    return {k: percentile_interval(v, confidence) for k, v in samples.items()}
