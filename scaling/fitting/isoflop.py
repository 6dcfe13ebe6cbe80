"""Approach 2 of Hoffmann et al.: IsoFLOP profiles.

Runs are grouped by compute budget (the table's `budget` column when present, else FLOPs within a relative
tolerance). Per budget a parabola of loss against log N has its vertex at N_opt(C), and the vertices lie on
`N_opt = k_N C^a` (so `D_opt = k_D C^b`, D_opt = C / (k N_opt) with k = C/(N D) of that budget's runs).
The parabolas are fitted together, each with its own curvature and depth but with their vertices held on
that line, rather than one by one: a budget whose sizes stop near its minimum has a vertex that its own
points barely place, and on small ladders such vertices set the slope (one-by-one fits of six CPU ladders
of one corpus gave a = 0.49-0.77; the joint fit 0.48-0.53). The one-by-one parabolas still decide which
budgets are usable and whether their minimum lies inside the sampled sizes. The vertex losses give
`L_opt(C) = E + A C^-alpha` when there are at least 3 budgets. The bootstrap resamples runs within each
budget, so every resample keeps every budget.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import UserError
from scaling.fitting.bootstrap import intervals, resample_groups
from scaling.fitting.compute_law import fit_saturating
from scaling.fitting.result import FitResult
from scaling.fitting.table import FitWarning, RunTable

_MAX_VERTEX_DISTANCE = np.log(1e4)  # a vertex 10,000x beyond the sizes' mean is no minimum of the data


def budget_groups(table: RunTable, tolerance: float = 0.25) -> np.ndarray:
    """Group id per run: equal `budget` values, else FLOPs within `tolerance` (relative) of the group's
    smallest run."""
    if table.budget is not None:
        return np.unique(table.budget, return_inverse=True)[1]
    order = np.argsort(table.C)
    groups = np.empty(len(table), dtype=np.int64)
    gid, start = -1, None
    for i in order:
        if start is None or table.C[i] > start * (1.0 + tolerance):
            gid, start = gid + 1, table.C[i]
        groups[i] = gid
    return groups


@dataclass(frozen=True)
class Vertex:
    """One budget's IsoFLOP profile: its parabola `L = p2 x^2 + p1 x + p0` in x = log N, and the minimum."""

    C: float
    N_opt: float
    D_opt: float
    L_opt: float
    parabola: tuple[float, float, float]
    members: np.ndarray  # row indices of the budget's runs
    inside: bool  # the minimum lies within the budget's sampled sizes (not extrapolated)


def vertices(
    table: RunTable, groups: np.ndarray, idx: np.ndarray | None = None, warn: bool = False
) -> list[Vertex]:
    """Per budget with >= 3 distinct sizes and an upward parabola (rows `idx`, default all)."""
    idx = np.arange(len(table)) if idx is None else idx
    out = []
    for g in np.unique(groups):
        members = idx[groups[idx] == g]
        x, loss = np.log(table.N[members]), table.L[members]
        budget = float(np.exp(np.mean(np.log(table.C[members]))))
        if np.unique(x).size < 3:
            if warn:
                warnings.warn(
                    f"budget {budget:.3g} FLOPs has {np.unique(x).size} model sizes (< 3): skipped",
                    FitWarning,
                    stacklevel=4,
                )
            continue
        p2, p1, p0 = np.polyfit(x, loss, 2)
        if p2 <= 0:
            if warn:
                warnings.warn(
                    f"budget {budget:.3g} FLOPs: loss vs log N is not convex (no minimum): skipped",
                    FitWarning,
                    stacklevel=4,
                )
            continue
        x_opt = -p1 / (2.0 * p2)
        if abs(x_opt - x.mean()) > _MAX_VERTEX_DISTANCE:
            if warn:
                warnings.warn(
                    f"budget {budget:.3g} FLOPs: the parabola's minimum is orders of magnitude away from the "
                    "sampled sizes (the profile is nearly flat or straight): skipped",
                    FitWarning,
                    stacklevel=4,
                )
            continue
        inside = bool(x.min() <= x_opt <= x.max())
        if warn and not inside:
            warnings.warn(
                f"budget {budget:.3g} FLOPs: the parabola's minimum N={np.exp(x_opt):.3g} lies outside the "
                "sampled sizes (extrapolated); add sizes around it",
                FitWarning,
                stacklevel=4,
            )
        n_opt = float(np.exp(x_opt))
        k = float(np.median(table.C[members] / (table.N[members] * table.D[members])))
        l_opt = float(p0 - p1 * p1 / (4.0 * p2))
        d_opt = budget / (k * n_opt)
        out.append(Vertex(budget, n_opt, d_opt, l_opt, (float(p2), float(p1), float(p0)), members, inside))
    return out


def joint_vertices(table: RunTable, points: list[Vertex]) -> list[Vertex]:
    """The usable budgets' parabolas refitted together, their vertices on one line log N_opt = m + a log C."""
    if len(points) < 2:
        return points
    x = [np.log(table.N[v.members]) for v in points]
    loss = [table.L[v.members] for v in points]
    log_c = np.log([v.C for v in points])
    center = log_c.mean()
    x_opt = np.log([v.N_opt for v in points])
    slope, intercept = np.polyfit(log_c - center, x_opt, 1)
    start = np.concatenate(
        [[slope, intercept], np.log([v.parabola[0] for v in points]), [v.L_opt for v in points]]
    )
    k = len(points)

    def residuals(p: np.ndarray) -> np.ndarray:
        vertex = p[1] + p[0] * (log_c - center)
        return np.concatenate(
            [p[k + 2 + i] + np.exp(p[2 + i]) * (x[i] - vertex[i]) ** 2 - loss[i] for i in range(k)]
        )

    p = least_squares(residuals, start).x  # the start is finite: every vertex came from a convex parabola
    out = []
    for i, v in enumerate(points):
        x_v = p[1] + p[0] * (log_c[i] - center)
        curvature, depth = float(np.exp(p[2 + i])), float(p[k + 2 + i])
        parabola = (curvature, -2.0 * curvature * x_v, depth + curvature * x_v * x_v)
        n_opt = float(np.exp(x_v))
        d_opt = v.D_opt * v.N_opt / n_opt  # the same C / k, at the joint N_opt
        out.append(Vertex(v.C, n_opt, d_opt, depth, parabola, v.members, v.inside))
    return out


def _power_laws(points: list[Vertex], start: dict[str, float] | None = None) -> dict[str, float]:
    nan = float("nan")
    if len(points) < 2:
        return {"a": nan, "b": nan, "k_N": nan, "k_D": nan, "E": nan, "A": nan, "alpha": nan}
    c = np.log([v.C for v in points])
    a, log_kn = np.polyfit(c, np.log([v.N_opt for v in points]), 1)
    b, log_kd = np.polyfit(c, np.log([v.D_opt for v in points]), 1)
    loss_law = fit_saturating(np.exp(c), np.array([v.L_opt for v in points]), start)
    return {"a": a, "b": b, "k_N": float(np.exp(log_kn)), "k_D": float(np.exp(log_kd)), **loss_law}


def fit_isoflop(
    table: RunTable,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    tolerance: float = 0.25,
) -> FitResult:
    groups = budget_groups(table, tolerance)
    points = joint_vertices(table, vertices(table, groups, warn=True))
    n_budgets = np.unique(groups).size
    if len(points) < 2:
        raise UserError(
            f"an IsoFLOP fit needs at least 2 compute budgets with >= 3 model sizes and a minimum each; "
            f"the table has {n_budgets} budget{'s' if n_budgets != 1 else ''} and {len(points)} usable"
        )
    if len(points) == 2:
        warnings.warn(
            "only 2 usable budgets: the exponents go exactly through them", FitWarning, stacklevel=2
        )
    if len(points) < 3:
        warnings.warn(
            "fewer than 3 budgets: no L_opt(C) law, so no loss prediction", FitWarning, stacklevel=2
        )
    params = {k: float(v) for k, v in _power_laws(points).items()}
    rng = np.random.default_rng(seed)
    loss_start = {k: params[k] for k in ("E", "A", "alpha")}
    resamples = resample_groups(groups, n_boot, rng)
    boot = [_power_laws(joint_vertices(table, vertices(table, groups, idx)), loss_start) for idx in resamples]
    samples = {k: np.array([b[k] for b in boot], dtype=np.float64) for k in params}
    failed = int(np.isnan(samples["a"]).sum()) if n_boot else 0
    if failed > 0.1 * n_boot:
        warnings.warn(
            f"{failed} of {n_boot} bootstrap resamples left fewer than 2 usable budgets (too few sizes per "
            "budget): the intervals come from the rest and understate the uncertainty",
            FitWarning,
            stacklevel=2,
        )
    return FitResult(
        law="isoflop",
        params=params,
        intervals=intervals(samples, confidence),
        samples={k: v.tolist() for k, v in samples.items()},
        objective=None,
        n_runs=len(table),
        confidence=confidence,
        conventions={
            "form": "N_opt = k_N C^a, D_opt = k_D C^b; L_opt(C) = E + A C^-alpha",
            "profile": "parabola of loss vs log N per budget, vertices fitted jointly on one power law",
            "grouping": "budget column" if table.budget is not None else f"FLOPs within {tolerance:.0%}",
        },
        diagnostics={
            "budgets": int(n_budgets),
            "usable_budgets": len(points),
            "interior_budgets": sum(v.inside for v in points),
            "bootstrap": n_boot,
            "seed": seed,
        },
        table={},
        extra={
            "budgets": [
                {
                    "C": v.C,
                    "N_opt": v.N_opt,
                    "D_opt": v.D_opt,
                    "L_opt": v.L_opt,
                    "parabola_log_N": list(v.parabola),
                    "inside": v.inside,
                }
                for v in points
            ]
        },
    )
