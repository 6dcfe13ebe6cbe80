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

from scaling.console import track
from scaling.errors import UserError
from scaling.fitting.bootstrap import intervals, resample_groups
from scaling.fitting.compute_law import fit_saturating
from scaling.fitting.result import FitResult
from scaling.fitting.table import FitWarning, RunTable

_MAX_VERTEX_DISTANCE = np.log(1e4)  # a vertex 10,000x beyond the sizes' mean is no minimum of the data
_CURVATURE_RANGE = np.log(100.0)


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


class JointProfiles:
    """The least-squares problem of `joint_vertices`: parameters [slope, intercept, log curvature per
    budget, depth per budget]; every run's residual is its budget's parabola, vertex on the line, minus
    its loss. Exact derivatives: a finite-difference Jacobian costs 2 + 2k residual calls a step, and on
    the 22 budgets of the published Chinchilla runs one bootstrap resample took over a minute."""

    def __init__(self, table: RunTable, points: list[Vertex]):
        x = [np.log(table.N[v.members]) for v in points]
        self.k = len(points)
        self.log_c = np.log([v.C for v in points])
        self.center = self.log_c.mean()
        self.budget = np.concatenate([np.full(len(xi), i) for i, xi in enumerate(x)])
        self.x = np.concatenate(x)
        self.loss = np.concatenate([table.L[v.members] for v in points])
        self.lever = (self.log_c - self.center)[self.budget]
        slope, intercept = np.polyfit(self.log_c - self.center, np.log([v.N_opt for v in points]), 1)
        curvatures = np.log([v.parabola[0] for v in points])
        self.start = np.concatenate([[slope, intercept], curvatures, [v.L_opt for v in points]])

    def residuals(self, p: np.ndarray) -> np.ndarray:
        gap = self.x - p[1] - p[0] * self.lever
        return p[self.k + 2 + self.budget] + np.exp(p[2 + self.budget]) * gap**2 - self.loss

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        gap = self.x - p[1] - p[0] * self.lever
        curvature = np.exp(p[2 + self.budget])
        rows = np.arange(self.budget.size)
        jac = np.zeros((self.budget.size, 2 + 2 * self.k))
        jac[:, 0] = -2.0 * curvature * gap * self.lever
        jac[:, 1] = -2.0 * curvature * gap
        jac[rows, 2 + self.budget] = curvature * gap**2
        jac[rows, self.k + 2 + self.budget] = 1.0
        return jac

    def solve(self) -> np.ndarray:
        """The start is finite (every vertex came from a convex parabola). Each curvature stays within 100x
        of its budget's own: a resample left with 3 sizes can make one a needle the line never settles on."""
        low, high = np.full(self.start.size, -np.inf), np.full(self.start.size, np.inf)
        curvatures = slice(2, self.k + 2)
        low[curvatures] = self.start[curvatures] - _CURVATURE_RANGE
        high[curvatures] = self.start[curvatures] + _CURVATURE_RANGE
        fit = least_squares(self.residuals, self.start, jac=self.jacobian, bounds=(low, high), x_scale="jac")
        return fit.x


def joint_vertices(table: RunTable, points: list[Vertex]) -> list[Vertex]:
    """The usable budgets' parabolas refitted together, their vertices on one line log N_opt = m + a log C."""
    if len(points) < 2:
        return points
    problem = JointProfiles(table, points)
    p, k = problem.solve(), problem.k
    out = []
    for i, v in enumerate(points):
        x_v = p[1] + p[0] * (problem.log_c[i] - problem.center)
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


def _warn_failed_refits(samples: dict[str, np.ndarray], n_boot: int, has_loss_law: bool) -> None:
    """Warn when over 10% of the resamples gave no allocation or (where the full fit has one) no L_opt law."""
    no_allocation = int(np.isnan(samples["a"]).sum())
    no_loss_law = int((np.isnan(samples["alpha"]) & ~np.isnan(samples["a"])).sum()) if has_loss_law else 0
    if no_allocation > 0.1 * n_boot:
        warnings.warn(
            f"{no_allocation} of {n_boot} bootstrap resamples left fewer than 2 usable budgets (too few "
            "sizes per budget): the intervals come from the rest and understate the uncertainty",
            FitWarning,
            stacklevel=3,
        )
    if no_loss_law > 0.1 * n_boot:
        warnings.warn(
            f"{no_loss_law} of {n_boot} bootstrap resamples gave no L_opt(C) law (their minima's losses "
            "fit no E + A C^-alpha): the loss intervals come from the rest and understate the uncertainty",
            FitWarning,
            stacklevel=3,
        )


def fit_isoflop(
    table: RunTable,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    tolerance: float = 0.25,
    progress: bool = True,
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
    resamples = track(
        resample_groups(groups, n_boot, rng), total=n_boot, desc="bootstrap", disable=not progress
    )
    boot = [_power_laws(joint_vertices(table, vertices(table, groups, idx)), loss_start) for idx in resamples]
    samples = {k: np.array([b[k] for b in boot], dtype=np.float64) for k in params}
    _warn_failed_refits(samples, n_boot, has_loss_law=len(points) >= 3)
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
