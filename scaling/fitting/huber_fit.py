"""Multi-start Huber fit of a sum of power laws (see `objective.py`), with bootstrap refits.

The recipe of Hoffmann et al. (approach 3), made to converge (Besiroglu et al. 2024):
1. L-BFGS from every point of a grid of starts, all at once (`lbfgs.minimize`), with moderate tolerances:
   this stage only has to find the basins.
2. The best distinct grid optima are polished with tight tolerances (float64), in the same batch as the
   bootstrap refits; each resample (integer run weights) is refitted, to the same tolerances, from the
   best grid optimum (or the best `boot_starts` distinct ones, keeping the lowest objective). On the grid,
   the runner-up optima are mostly points of the same shallow valley, so one start per resample suffices.
Cost is problems x runs x evaluations. The grid sees at most `GRID_RUNS` runs (a fixed random subset of a
larger table: it only has to find the basins); problems run in batches sized by `memory_budget`, refilled as
they finish (`lbfgs.minimize`), and bootstrap weights are drawn as their refits start, so memory is bounded
by the budget, not by runs x resamples.
Flags: the best optimum reached only from starts on the grid's boundary, an optimum outside the grid's box,
or a polish that hit its evaluation cap; each also raises a `FitWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from scaling.errors import UserError
from scaling.fitting.bootstrap import ResampleStream
from scaling.fitting.lbfgs import STATUS_NAMES, LbfgsOptions, minimize
from scaling.fitting.objective import HUBER_DELTA, huber_lse_value_and_grad, huber_lse_value_numpy
from scaling.fitting.table import FitWarning

GRID_OPTIONS = LbfgsOptions(max_evals=150, gtol=1e-7, ftol=1e-9)
POLISH_OPTIONS = LbfgsOptions(max_evals=1000, gtol=1e-11, ftol=1e-15)
MEMORY_BUDGET = 1 << 30  # bytes of objective temporaries per batch of problems (grid starts or refits)
GRID_RUNS = 4096  # the grid of starts sees at most this many runs (see _grid_runs)
_MIN_BATCH = 8  # problems per batch at the least: fewer would save no memory worth the dispatches
_SAME_RELATIVE = 0.05  # grid optima closer than this (per coordinate, relative to 1 + |x|) are one optimum


@dataclass(frozen=True)
class HuberFit:
    x: np.ndarray  # best parameter vector (P,)
    objective: float
    boot_x: np.ndarray  # (n_boot, P); NaN rows for failed refits
    diagnostics: dict


def _pad_runs(X_KxN: np.ndarray, y_N: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad runs to a power of two with zero-weight rows, so tables of similar size share one compilation."""
    n = y_N.size
    size = max(64, 1 << (n - 1).bit_length())
    X = np.zeros((X_KxN.shape[0], size))
    X[:, :n] = X_KxN
    y = np.zeros(size)
    y[:n] = y_N
    w = np.zeros(size)
    w[:n] = 1.0
    return X, y, w


def _distinct(x: np.ndarray, f: np.ndarray, limit: int) -> list[int]:
    order = [i for i in np.argsort(np.where(np.isfinite(f), f, np.inf)) if np.isfinite(f[i])]
    kept: list[int] = []
    for i in order:
        if all(np.max(np.abs(x[i] - x[j]) / (1.0 + np.abs(x[j]))) > _SAME_RELATIVE for j in kept):
            kept.append(i)
        if len(kept) == limit:
            break
    return kept


def fit_huber(
    X_KxN: np.ndarray,
    log_loss: np.ndarray,
    grid: np.ndarray,
    names: tuple[str, ...],
    n_boot: int,
    seed: int = 0,
    n_candidates: int = 8,
    boot_starts: int = 1,
    progress: bool = True,
    memory_budget: int = MEMORY_BUDGET,
) -> HuberFit:
    """Fit parameter vectors laid out as in `objective.py` (`names` label them for messages). Batches of
    problems are sized so the objective's temporaries stay within `memory_budget` bytes."""
    n, p = log_loss.size, grid.shape[1]
    if n < p:
        raise UserError(f"{n} runs cannot determine {p} free parameters ({', '.join(names)}); add runs")
    if n == p:
        warnings.warn(
            f"{n} runs for {p} free parameters: the law interpolates the runs, its intervals mean nothing",
            FitWarning,
            stacklevel=3,
        )
    X_KxN, log_loss = np.asarray(X_KxN, np.float64), np.asarray(log_loss, np.float64)
    k = X_KxN.shape[0]
    grid_runs = _grid_runs(n)
    gX, gy, gw = _pad_runs(X_KxN[:, grid_runs], log_loss[grid_runs])
    grid_batch = min(len(grid), _batch(memory_budget, gy.size, k))
    coarse = minimize(
        huber_lse_value_and_grad,
        grid,
        {"X": gX, "y": gy, "w": gw, "delta": HUBER_DELTA},
        GRID_OPTIONS,
        "grid starts" if progress else None,
        batch=grid_batch,
    )
    candidates = _distinct(coarse.x, coarse.f, n_candidates)
    if not candidates:
        raise UserError("every start of the fit gave a non-finite objective; check the table's values")
    fine = _polish(
        X_KxN, log_loss, coarse.x, candidates, candidates[:boot_starts], n_boot, seed, progress, memory_budget
    )

    polished_f = fine.f[: len(candidates)]
    best = int(np.nanargmin(np.where(np.isfinite(polished_f), polished_f, np.nan)))
    x_best, f_best = fine.x[best], float(fine.f[best])
    boot_x = _best_per_resample(fine, len(candidates), n_boot, min(boot_starts, len(candidates)))
    f_grid = f_best if grid_runs.size == n else huber_lse_value_numpy(x_best, gX, gy, gw)
    diagnostics = _diagnostics(coarse, fine, grid, names, best, candidates, x_best, f_grid, n_boot, boot_x)
    return HuberFit(
        x=x_best,
        objective=f_best,
        boot_x=boot_x,
        diagnostics={**diagnostics, "grid_runs": int(grid_runs.size)},
    )


def _grid_runs(n: int) -> np.ndarray:
    """The runs the grid of starts is evaluated on: all, or a fixed random `GRID_RUNS` of a larger table.
    The grid only has to find the basins; it costs starts x runs x evaluations, the largest term of a fit
    of many runs, and the polish and every bootstrap refit use all runs."""
    if n <= GRID_RUNS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, GRID_RUNS, replace=False))


def _batch(budget: int, width: int, k: int) -> int:
    """Problems per batch whose objective temporaries fit in `budget` bytes: about 3K + 4 float64 arrays of
    (problems x padded runs): the K exponentials and their weighted products, residuals, weights."""
    return max(_MIN_BATCH, budget // (8 * width * (3 * k + 4)))


def _polish(X_KxN, log_loss, x_coarse, candidates, boot_starts, n_boot, seed, progress, budget):
    """Tight refits: the distinct grid optima on all runs, then each bootstrap resample from `boot_starts`."""
    n, k = log_loss.size, len(boot_starts)
    X, y, w = _pad_runs(X_KxN, log_loss)
    rows = len(candidates) + n_boot * k
    size = min(max(16, 1 << (rows - 1).bit_length()), _batch(budget, w.size, X.shape[0]))
    x0 = np.concatenate([x_coarse[candidates], np.tile(x_coarse[boot_starts], (n_boot, 1))])
    weights = _polish_weights(n, w.size, len(candidates), k, ResampleStream(n, np.random.default_rng(seed)))
    label = (f"polish + {n_boot} bootstrap refits" if n_boot else "polish") if progress else None
    data = {"X": X, "y": y, "delta": HUBER_DELTA}
    return minimize(huber_lse_value_and_grad, x0, data, POLISH_OPTIONS, label, batch=size, rows=weights)


def _polish_weights(n: int, width: int, n_candidates: int, k: int, stream: ResampleStream):
    """Run weights of polish problems first..stop-1: all runs once for the candidates, then each
    resample's counts for its `k` refits (drawn as the refits start)."""

    def rows(first: int, stop: int) -> dict[str, np.ndarray]:
        problem = np.arange(first, stop)
        w = np.zeros((problem.size, width))
        w[problem < n_candidates, :n] = 1.0
        resample = (problem[problem >= n_candidates] - n_candidates) // k
        if resample.size:
            block = stream.counts(int(resample[0]), int(resample[-1]) + 1)
            w[problem >= n_candidates, :n] = block[resample - resample[0]]
        return {"w": w}

    return rows


def _best_per_resample(fine, offset: int, n_boot: int, k: int) -> np.ndarray:
    if n_boot == 0:
        return np.zeros((0, fine.x.shape[1]))
    f = fine.f[offset : offset + n_boot * k].reshape(n_boot, k)
    x = fine.x[offset : offset + n_boot * k].reshape(n_boot, k, -1)
    ok = fine.converged[offset : offset + n_boot * k].reshape(n_boot, k) & np.isfinite(f)
    f = np.where(ok, f, np.inf)
    pick = np.argmin(f, axis=1)
    out = x[np.arange(n_boot), pick].copy()
    out[~ok.any(axis=1)] = np.nan
    return out


def _diagnostics(coarse, fine, grid, names, best, candidates, x_best, f_grid, n_boot, boot_x) -> dict:
    """`f_grid`: the best optimum's objective on the grid's runs, which the grid optima are compared with."""
    lo, hi = grid.min(axis=0), grid.max(axis=0)
    reached = np.isfinite(coarse.f) & (coarse.f <= f_grid * (1 + 1e-6) + 1e-300)
    on_edge = np.any((grid == lo) | (grid == hi), axis=1)
    only_from_edge = bool(reached.any() and on_edge[reached].all())
    outside = [name for name, v, a, b in zip(names, x_best, lo, hi, strict=True) if v < a or v > b]
    status = STATUS_NAMES[int(fine.status[best])]
    converged = bool(fine.converged[best])
    if only_from_edge:
        warnings.warn(
            "the best optimum was reached only from starts on the grid's boundary: widen the grid",
            FitWarning,
            stacklevel=4,
        )
    if outside:
        warnings.warn(
            f"the optimum lies outside the grid of starts in {', '.join(outside)}: widen the grid",
            FitWarning,
            stacklevel=4,
        )
    if not converged:
        warnings.warn(
            f"the polished optimum did not converge (stopped by {status}, "
            f"max |gradient| {fine.grad_max[best]:.3g}); do not trust its digits",
            FitWarning,
            stacklevel=4,
        )
    failed_boot = int(np.isnan(boot_x[:, 0]).sum()) if n_boot else 0
    if failed_boot:
        message = f"{failed_boot} of {n_boot} bootstrap refits failed to converge"
        warnings.warn(message, FitWarning, stacklevel=4)
    return {
        "grid_starts": int(grid.shape[0]),
        "grid_converged": int(coarse.converged.sum()),
        "grid_hit_eval_cap": int((~coarse.converged).sum()),
        "starts_reaching_best": int(reached.sum()),
        "distinct_optima_polished": len(candidates),
        "best_reached_only_from_boundary": only_from_edge,
        "optimum_outside_grid": outside,
        "converged": converged,
        "stop_reason": status,
        "grad_max": float(fine.grad_max[best]),
        "evaluations": int(coarse.evals[candidates[best]] + fine.evals[best]),
        "bootstrap_failed": failed_boot,
    }
