"""Bootstrap over runs: resamples as integer weights, and percentile intervals.

A resample with replacement is a vector of counts (how often each run was drawn); a weighted objective with
those counts equals the objective on the resampled table, so a batch of resamples is a batch of weight rows
and no table is copied.
"""

from __future__ import annotations

import numpy as np


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) float64 counts of each run in each resample (every row sums to n)."""
    draws = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), draws.ravel()), 1.0)
    return counts


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
