"""Synthetic tables drawn from known laws, shared by the fitter's tests."""

from __future__ import annotations

import numpy as np

from scaling.fitting.table import RunTable, TableSpec

# Hoffmann et al. (2022) eq. (10).
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla_loss(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def make_table(N, D, L, C=None, budget=None) -> RunTable:
    N, D, L = (np.asarray(v, dtype=np.float64) for v in (N, D, L))
    n = N.size
    return RunTable(
        spec=TableSpec(source="synthetic"),
        names=tuple(f"run{i}" for i in range(n)),
        N=N,
        D=D,
        C=6.0 * N * D if C is None else np.asarray(C, dtype=np.float64),
        L=L,
        run_dirs=(None,) * n,
        budget=budget,
        sha256="",
    )


def isoflop_table(p=HOFFMANN, budgets=(1e18, 1e19, 1e20, 1e21), sizes=9, noise=0.003, seed=0):
    """Runs on IsoFLOP budgets, sizes spread around each budget's true optimum (C = 6ND)."""
    rng = np.random.default_rng(seed)
    a = p["beta"] / (p["alpha"] + p["beta"])
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    N, D, L, B = [], [], [], []
    for c in budgets:
        n_opt = g * (c / 6) ** a
        for n in n_opt * np.geomspace(1 / 6, 6, sizes):
            d = c / (6 * n)
            N.append(n)
            D.append(d)
            L.append(chinchilla_loss(p, n, d) * np.exp(rng.normal(0, noise)))
            B.append(c)
    return make_table(N, D, L, budget=np.array(B))
