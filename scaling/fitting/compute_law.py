"""The GPT-4 report's compute law `L(C) = E + A C^-alpha`, on the compute-efficient frontier or all runs.

The frontier keeps each run whose loss is below that of every cheaper run: the best loss reachable at each
compute. The law is fitted like Chinchilla (sum of Huber losses of log residuals, multi-start L-BFGS, then a
tight polish), with the bootstrap resampling the fitted points.

`fit_saturating` fits the same form to a handful of points by least squares in log space (scipy); IsoFLOP
and envelope fits use it for the loss at the compute-optimal allocation, refitted per bootstrap resample.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import UserError
from scaling.fitting.bootstrap import intervals
from scaling.fitting.huber_fit import fit_huber
from scaling.fitting.objective import HUBER_DELTA
from scaling.fitting.result import FitResult
from scaling.fitting.table import RunTable, frontier_mask

Points = Literal["frontier", "all"]
_NAMES = ("a", "alpha", "e")


def compute_grid() -> np.ndarray:
    """Starts in internal order [a, alpha, e]: 7 x 7 x 5 = 245 points."""
    a = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    alpha = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    e = (-1.0, -0.5, 0.0, 0.5, 1.0)
    return np.array([(x, y, z) for x, y, z in itertools.product(a, alpha, e)], dtype=np.float64)


def to_paper(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    return {"E": np.exp(x[..., 2]), "A": np.exp(x[..., 0]), "alpha": x[..., 1]}


def fit_compute(
    table: RunTable,
    points: Points = "frontier",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> FitResult:
    if points not in ("frontier", "all"):
        raise UserError(f"points must be 'frontier' or 'all', not {points!r}")
    mask = frontier_mask(table.C, table.L) if points == "frontier" else np.ones(len(table), dtype=bool)
    C, L = table.C[mask], table.L[mask]
    fit = fit_huber(np.log(C)[None], np.log(L), compute_grid(), _NAMES, n_boot, seed=seed, progress=progress)
    samples = to_paper(fit.boot_x)
    return FitResult(
        law="compute",
        params={k: float(v) for k, v in to_paper(fit.x).items()},
        intervals=intervals(samples, confidence),
        samples={k: v.tolist() for k, v in samples.items()},
        objective=fit.objective,
        n_runs=int(mask.sum()),
        confidence=confidence,
        conventions={
            "form": "L(C) = E + A C^-alpha",
            "points": points,
            "objective": "sum over runs of Huber(log L_pred - log L)",
            "huber_delta": HUBER_DELTA,
        },
        diagnostics={**fit.diagnostics, "bootstrap": n_boot, "seed": seed},
        table={},
        extra={"fitted_runs": [table.names[i] for i in np.flatnonzero(mask)]},
    )


def fit_saturating(C: np.ndarray, L: np.ndarray, start: dict[str, float] | None = None) -> dict[str, float]:
    """Least-squares `log L = log(E + A C^-alpha)` through a few points: the best of a small grid of starts,
    or one run from `start` (a previous fit, as for bootstrap refits). NaN when fewer than 3 points."""
    C, L = np.asarray(C, np.float64), np.asarray(L, np.float64)
    nan = {"E": float("nan"), "A": float("nan"), "alpha": float("nan")}
    if C.size < 3 or not (np.all(np.isfinite(L)) and np.all(L > 0)):
        return nan  # a resample's parabola can give a vertex loss <= 0: no law through it
    x = np.log(C)
    y = np.log(L)

    def residuals(p):
        return np.logaddexp(p[0] - p[1] * x, p[2]) - y

    if start is not None and np.all(np.isfinite(list(start.values()))):
        starts = [[np.log(start["A"]), start["alpha"], np.log(start["E"])]]
    else:
        starts = []
        for alpha, e in itertools.product((0.05, 0.2, 0.5), (np.log(L.min()) - 1.0, np.log(L.min()) - 0.1)):
            starts.append([np.log(max(L.max() - np.exp(e), 1e-3)) + alpha * x.min(), alpha, e])
    best = None
    for x0 in starts:
        if not np.all(np.isfinite(residuals(np.asarray(x0)))):
            continue
        res = least_squares(residuals, x0, method="lm", xtol=1e-14, ftol=1e-14, gtol=1e-14)
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        return nan
    return {k: float(v) for k, v in to_paper(np.array([best.x[0], best.x[1], best.x[2]])).items()}
