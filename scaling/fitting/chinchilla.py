"""Approach 3 of Hoffmann et al. (2022): the parametric law `L(N, D) = E + A/N^alpha + B/D^beta`.

Fitted as they describe, with the fixes of Besiroglu et al. (2024): minimise the *sum* over runs of
Huber(delta=1e-3) of `LSE(a - alpha log N, b - beta log D, e) - log L` by L-BFGS from their 4500-point grid,
polish to tight tolerances, report `A, B, E = exp(a, b, e)` unrounded. The compute-optimal exponents
`a = beta/(alpha+beta)`, `b = alpha/(alpha+beta)` and coefficient G follow from the closed form (laws.py);
each bootstrap refit carries its own, so they get intervals too.
"""

from __future__ import annotations

import itertools

import numpy as np

from scaling.fitting.bootstrap import intervals
from scaling.fitting.huber_fit import fit_huber
from scaling.fitting.laws import chinchilla_exponents
from scaling.fitting.objective import HUBER_DELTA
from scaling.fitting.result import FitResult
from scaling.fitting.table import RunTable

# Internal parameter order (objective.py layout): [a, b, alpha, beta, e].
_NAMES = ("a", "b", "alpha", "beta", "e")


def hoffmann_grid(
    ab: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    exponents: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0),
    e: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0),
) -> np.ndarray:
    """The grid of starts of Hoffmann et al.: 6 x 6 x 5 x 5 x 5 = 4500 points (rows in internal order)."""
    return np.array(list(itertools.product(ab, ab, exponents, exponents, e)), dtype=np.float64)


def to_paper(x: np.ndarray) -> dict[str, np.ndarray]:
    """Internal vector(s) (..., 5) -> E, A, B, alpha, beta and the compute-optimal a, b, G."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _paper(x)


def _paper(x: np.ndarray) -> dict[str, np.ndarray]:
    p = {
        "E": np.exp(x[..., 4]),
        "A": np.exp(x[..., 0]),
        "B": np.exp(x[..., 1]),
        "alpha": x[..., 2],
        "beta": x[..., 3],
    }
    a_exp, b_exp = chinchilla_exponents(p)
    p["a"], p["b"] = a_exp, b_exp
    p["G"] = np.power(p["alpha"] * p["A"] / (p["beta"] * p["B"]), 1.0 / (p["alpha"] + p["beta"]))
    return p


def fit_chinchilla(
    table: RunTable,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    grid: np.ndarray | None = None,
    progress: bool = True,
) -> FitResult:
    starts = hoffmann_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    X = np.stack([np.log(table.N), np.log(table.D)])
    fit = fit_huber(X, np.log(table.L), starts, _NAMES, n_boot, seed=seed, progress=progress)
    params = {k: float(v) for k, v in to_paper(fit.x).items()}
    samples = to_paper(fit.boot_x)
    return FitResult(
        law="chinchilla",
        params=params,
        intervals=intervals(samples, confidence),
        samples={k: v.tolist() for k, v in samples.items()},
        objective=fit.objective,
        n_runs=len(table),
        confidence=confidence,
        conventions={
            "form": "L(N, D) = E + A/N^alpha + B/D^beta",
            "objective": "sum over runs of Huber(log L_pred - log L)",
            "huber_delta": HUBER_DELTA,
            "flops_per_param_token": table.flops_per_param_token,
        },
        diagnostics={**fit.diagnostics, "bootstrap": n_boot, "seed": seed},
        table={},
    )
