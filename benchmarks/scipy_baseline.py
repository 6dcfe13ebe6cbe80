"""Baseline for the approach-3 benchmark: a plain scipy L-BFGS-B loop over the same 4500 starts.

Same objective (sum of Huber(1e-3) of log residuals, analytic gradient in float64 numpy, which is faster
and more exact than scipy's finite differences), same stopping rules and the same protocol as
`scaling.fitting.huber_fit`: every start with the grid tolerances, the best distinct optima polished with
tight ones, then each bootstrap resample (the same integer run weights) refitted from the best grid optimum.
Only the execution differs: one `scipy.optimize.minimize` call at a time.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

from scaling.fitting.bootstrap import resample_counts
from scaling.fitting.huber_fit import GRID_OPTIONS, POLISH_OPTIONS, _distinct

DELTA = 1e-3


def value_and_grad(x: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Objective and gradient at x = [a, b, alpha, beta, e] (LSE max-shifted for safety)."""
    a, b, alpha, beta, e = x
    t = np.stack([a - alpha * X[0], b - beta * X[1], np.full_like(y, e)])
    m = t.max(axis=0)
    u = np.exp(t - m)
    s = u.sum(axis=0)
    r = m + np.log(s) - y
    ar = np.abs(r)
    f = float(np.sum(w * np.where(ar <= DELTA, 0.5 * r * r, DELTA * (ar - 0.5 * DELTA))))
    q = w * np.clip(r, -DELTA, DELTA) * u / s
    grad = np.array([q[0].sum(), q[1].sum(), -(q[0] * X[0]).sum(), -(q[1] * X[1]).sum(), q[2].sum()])
    return f, grad


def _lbfgsb(x0, X, y, w, opts):
    # scipy's ftol is relative to max(|f|, 1); our objective is ~1e-3, so scale it to match our relative ftol.
    res = minimize(
        value_and_grad,
        x0,
        args=(X, y, w),
        jac=True,
        method="L-BFGS-B",
        options={
            "maxfun": opts.max_evals,
            "maxiter": opts.max_evals,
            "gtol": opts.gtol,
            "ftol": opts.ftol * 1e-3,
        },
    )
    return res.x, float(res.fun)


def fit_scipy(N, D, L, grid: np.ndarray, n_boot: int, seed: int = 0, n_candidates: int = 8) -> dict:
    X = np.stack([np.log(N), np.log(D)])
    y = np.log(L)
    ones = np.ones_like(y)
    start = time.perf_counter()
    coarse = [_lbfgsb(x0, X, y, ones, GRID_OPTIONS) for x0 in grid]
    xs = np.array([c[0] for c in coarse])
    fs = np.array([c[1] for c in coarse])
    candidates = _distinct(xs, fs, n_candidates)
    polished = [_lbfgsb(xs[i], X, y, ones, POLISH_OPTIONS) for i in candidates]
    best = int(np.argmin([p[1] for p in polished]))
    grid_seconds = time.perf_counter() - start
    counts = resample_counts(y.size, n_boot, np.random.default_rng(seed))
    boot = np.array([_lbfgsb(xs[candidates[0]], X, y, w, POLISH_OPTIONS)[0] for w in counts])
    return {
        "x": polished[best][0],
        "objective": polished[best][1],
        "boot_x": boot,
        "grid_seconds": grid_seconds,
        "seconds": time.perf_counter() - start,
    }
