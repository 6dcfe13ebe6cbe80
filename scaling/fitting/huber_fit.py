"""Multi-start Huber fit of a sum of power laws (see `objective.py`), with bootstrap refits.

The recipe of Hoffmann et al. (approach 3), made to converge (Besiroglu et al. 2024):
1. L-BFGS from every point of a grid of starts, all at once (`lbfgs.minimize`), with moderate tolerances:
   this stage only has to find the basins.
2. The best distinct grid optima are polished with tight tolerances (float64), in the same batch as the
   bootstrap refits; each resample (integer run weights) is refitted, to the same tolerances, from the
   best grid optimum (or the best `boot_starts` distinct ones, keeping the lowest objective). On the grid,
   the runner-up optima are mostly points of the same shallow valley, so one start per resample suffices.
Flags: the best optimum reached only from starts on the grid's boundary, an optimum outside the grid's box,
or a polish that hit its evaluation cap; each also raises a `FitWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from scaling.errors import UserError
from scaling.fitting.bootstrap import resample_counts
from scaling.fitting.lbfgs import STATUS_NAMES, LbfgsOptions, minimize
from scaling.fitting.objective import HUBER_DELTA, huber_lse_value_and_grad
from scaling.fitting.table import FitWarning

GRID_OPTIONS = LbfgsOptions(max_evals=150, gtol=1e-7, ftol=1e-9)
POLISH_OPTIONS = LbfgsOptions(max_evals=1000, gtol=1e-11, ftol=1e-15)
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
) -> HuberFit:
    """Fit parameter vectors laid out as in `objective.py` (`names` label them for messages)."""
    n, p = log_loss.size, grid.shape[1]
    if n < p:
        raise UserError(f"{n} runs cannot determine {p} free parameters ({', '.join(names)}); add runs")
    if n == p:
        warnings.warn(
            f"{n} runs for {p} free parameters: the law interpolates the runs, its intervals mean nothing",
            FitWarning,
            stacklevel=3,
        )
    X, y, w = _pad_runs(np.asarray(X_KxN, np.float64), np.asarray(log_loss, np.float64))
    data = {"X": X, "y": y, "w": w, "delta": HUBER_DELTA}
    coarse = minimize(huber_lse_value_and_grad, grid, data, GRID_OPTIONS, "grid starts" if progress else None)
    candidates = _distinct(coarse.x, coarse.f, n_candidates)
    if not candidates:
        raise UserError("every start of the fit gave a non-finite objective; check the table's values")
    boot_starts = candidates[:boot_starts]

    rng = np.random.default_rng(seed)
    counts = resample_counts(n, n_boot, rng)
    rows = len(candidates) + n_boot * len(boot_starts)
    size = max(16, 1 << (rows - 1).bit_length())
    pad = np.repeat(coarse.x[:1], size - rows, axis=0)
    x0 = np.concatenate([coarse.x[candidates], np.tile(coarse.x[boot_starts], (n_boot, 1)), pad])
    weights = np.zeros((size, w.size))
    weights[: len(candidates), :n] = 1.0
    weights[len(candidates) : rows, :n] = np.repeat(counts, len(boot_starts), axis=0)
    weights[rows:, :n] = 1.0
    label = (f"polish + {n_boot} bootstrap refits" if n_boot else "polish") if progress else None
    fine = minimize(huber_lse_value_and_grad, x0, {**data, "w": weights}, POLISH_OPTIONS, label)

    polished_f = fine.f[: len(candidates)]
    best = int(np.nanargmin(np.where(np.isfinite(polished_f), polished_f, np.nan)))
    x_best, f_best = fine.x[best], float(fine.f[best])
    boot_x = _best_per_resample(fine, len(candidates), n_boot, len(boot_starts))

    diagnostics = _diagnostics(coarse, fine, grid, names, best, candidates, x_best, f_best, n_boot, boot_x)
    return HuberFit(x=x_best, objective=f_best, boot_x=boot_x, diagnostics=diagnostics)


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


def _diagnostics(coarse, fine, grid, names, best, candidates, x_best, f_best, n_boot, boot_x) -> dict:
    lo, hi = grid.min(axis=0), grid.max(axis=0)
    reached = np.isfinite(coarse.f) & (coarse.f <= f_best * (1 + 1e-6) + 1e-300)
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
