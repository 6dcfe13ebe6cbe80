"""Kaplan et al. (2020): `L(N) = (N_c/N)^alpha_N` and `L(D) = (D_c/D)^alpha_D`.

Kaplan fitted L(N) to models trained near convergence and L(D) to large models stopped early; from a table
of runs the closest analogue is the best loss per model size (its longest-trained run) and the best loss per
token count (its largest model). Each is a straight line in log-log space, fitted with the same Huber
objective as Chinchilla (robust to an outlier run) and bootstrapped over those points.
"""

from __future__ import annotations

import itertools

import numpy as np

from scaling.errors import UserError
from scaling.fitting.bootstrap import intervals
from scaling.fitting.huber_fit import fit_huber
from scaling.fitting.objective import HUBER_DELTA
from scaling.fitting.result import FitResult
from scaling.fitting.table import RunTable


def best_per_value(x: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of x and the lowest loss observed at each."""
    values = np.unique(x)
    return values, np.array([loss[x == v].min() for v in values])


def _grid() -> np.ndarray:
    """Starts for [c, alpha] with log L = c - alpha log X: 6 x 11 = 66 points."""
    c = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    alpha = tuple(np.round(np.arange(0.0, 0.55, 0.05), 2))
    return np.array(list(itertools.product(c, alpha)), dtype=np.float64)


def _fit_one(x, loss, names, n_boot, seed, progress):
    if np.unique(x).size < 2:
        raise UserError(f"a Kaplan fit of L({names[0]}) needs at least 2 distinct values of {names[0]}")
    fit = fit_huber(
        np.log(x)[None], np.log(loss), _grid(), ("c", "alpha"), n_boot, seed=seed, progress=progress
    )

    def paper(v):
        v = np.asarray(v, np.float64)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            scale = np.exp(v[..., 0] / v[..., 1])
        return {f"alpha_{names[0]}": v[..., 1], f"{names[0]}_c": scale}

    return fit, paper(fit.x), paper(fit.boot_x)


def fit_kaplan(
    table: RunTable, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0, progress: bool = True
) -> FitResult:
    n_vals, n_loss = best_per_value(table.N, table.L)
    d_vals, d_loss = best_per_value(table.D, table.L)
    fit_n, params_n, samples_n = _fit_one(n_vals, n_loss, ("N",), n_boot, seed, progress)
    fit_d, params_d, samples_d = _fit_one(d_vals, d_loss, ("D",), n_boot, seed + 1, progress)
    samples = {**samples_n, **samples_d}
    return FitResult(
        law="kaplan",
        params={k: float(v) for k, v in {**params_n, **params_d}.items()},
        intervals=intervals(samples, confidence),
        samples={k: v.tolist() for k, v in samples.items()},
        objective=fit_n.objective + fit_d.objective,
        n_runs=len(table),
        confidence=confidence,
        conventions={
            "form": "L(N) = (N_c/N)^alpha_N; L(D) = (D_c/D)^alpha_D; L(N, D) by Kaplan eq. (1.5)",
            "points": "lowest loss per distinct N, and per distinct D",
            "objective": "sum over points of Huber(log L_pred - log L)",
            "huber_delta": HUBER_DELTA,
        },
        diagnostics={
            "L(N)": {**fit_n.diagnostics, "points": int(n_vals.size)},
            "L(D)": {**fit_d.diagnostics, "points": int(d_vals.size)},
            "bootstrap": n_boot,
            "seed": seed,
        },
        table={},
    )
