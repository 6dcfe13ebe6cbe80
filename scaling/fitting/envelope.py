"""Approach 1 of Hoffmann et al.: the envelope of training curves.

Each run's `metrics.jsonl` gives loss against cumulative FLOPs. On a log-spaced grid of FLOPs, the envelope
is the lowest (interpolated) loss of any run at that compute, and the run achieving it gives N_opt(C) and,
from its logged tokens, D_opt(C); `N_opt = k_N C^a`, `D_opt = k_D C^b` are fitted in log-log space and
`L_opt(C) = E + A C^-alpha` to the envelope. Training loss is smoothed by a centred moving average first.
Caveat (as in the paper): a point in the middle of a run is not the end of a schedule tuned for that length,
so the envelope is only as good as the runs' learning-rate schedules. The bootstrap resamples whole runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.errors import UserError
from scaling.fitting.bootstrap import intervals
from scaling.fitting.compute_law import fit_saturating
from scaling.fitting.result import FitResult
from scaling.fitting.table import FitWarning, RunTable
from scaling.records import METRICS_FILE, read_metrics

GRID_POINTS = 200


@dataclass(frozen=True)
class Curve:
    name: str
    N: float
    flops: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray


def read_curve(
    run_dir: str, name: str, N: float, loss_key: str = "train_loss", smooth: int = 5
) -> Curve | None:
    """The run's (flops, tokens, loss) rows with a positive loss, sorted by FLOPs; None if unreadable."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    rows = []
    for row in read_metrics(path):
        value = row.get(loss_key)
        if isinstance(value, int | float) and np.isfinite(value) and value > 0 and row.get("flops", 0) > 0:
            rows.append((float(row["flops"]), float(row.get("tokens", np.nan)), float(value)))
    if len(rows) < 2:
        return None
    data = np.array(sorted(rows))
    loss = data[:, 2]
    if smooth > 1 and loss.size >= smooth:
        kernel = np.ones(smooth) / smooth
        padded = np.pad(loss, smooth // 2, mode="edge")
        loss = np.convolve(padded, kernel, mode="valid")[: data.shape[0]]
    return Curve(name=name, N=N, flops=data[:, 0], tokens=data[:, 1], loss=loss)


def load_curves(table: RunTable, loss_key: str = "train_loss", smooth: int = 5) -> list[Curve]:
    curves, missing = [], []
    for name, run_dir, n in zip(table.names, table.run_dirs, table.N, strict=True):
        curve = read_curve(run_dir, name, float(n), loss_key, smooth) if run_dir else None
        (curves if curve is not None else missing).append(curve or name)
    if not curves:
        raise UserError(
            "an envelope fit needs the runs' metrics.jsonl curves: fit a sweep directory, or a results.csv "
            f"whose run_dir column points at the runs (none found, e.g. for {missing[0]})"
        )
    if missing:
        warnings.warn(
            f"{len(missing)} runs have no readable metrics.jsonl with {loss_key!r} and are left out "
            f"(e.g. {missing[0]})",
            FitWarning,
            stacklevel=3,
        )
    return curves


def curve_matrix(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLOPs grid (G,), loss (R, G) and tokens (R, G) per run, inf/NaN where a run does not reach."""
    lo = min(c.flops[0] for c in curves)
    hi = max(c.flops[-1] for c in curves)
    grid = np.geomspace(lo, hi, GRID_POINTS)
    loss = np.full((len(curves), grid.size), np.inf)
    tokens = np.full((len(curves), grid.size), np.nan)
    for r, c in enumerate(curves):
        inside = (grid >= c.flops[0]) & (grid <= c.flops[-1])
        loss[r, inside] = np.interp(np.log(grid[inside]), np.log(c.flops), c.loss)
        tokens[r, inside] = np.interp(np.log(grid[inside]), np.log(c.flops), c.tokens)
    return grid, loss, tokens


def envelope_points(grid, loss, tokens, sizes):
    """(C, N_opt, D_opt, L) along the envelope, leaving out FLOPs where the smallest or the largest model
    leads: there the optimum may lie outside the sampled sizes, and keeping those points flattens a."""
    covered = np.flatnonzero(np.isfinite(loss).any(axis=0))
    win = np.argmin(loss[:, covered], axis=0)
    inner = (sizes[win] > sizes.min()) & (sizes[win] < sizes.max())
    cols, win = covered[inner], win[inner]
    return grid[cols], sizes[win], tokens[win, cols], loss[win, cols]


def _envelope_laws(grid, loss, tokens, sizes, start=None) -> dict[str, float]:
    c, n_opt, d_opt, l_env = envelope_points(grid, loss, tokens, sizes)
    nan = float("nan")
    if np.unique(n_opt).size < 2:
        return {"a": nan, "b": nan, "k_N": nan, "k_D": nan, "E": nan, "A": nan, "alpha": nan}
    a, log_kn = np.polyfit(np.log(c), np.log(n_opt), 1)
    ok = np.isfinite(d_opt) & (d_opt > 0)
    b, log_kd = np.polyfit(np.log(c[ok]), np.log(d_opt[ok]), 1) if ok.sum() >= 2 else (nan, nan)
    return {
        "a": float(a),
        "b": float(b),
        "k_N": float(np.exp(log_kn)),
        "k_D": float(np.exp(log_kd)),
        **fit_saturating(c, l_env, start),
    }


def fit_envelope(
    table: RunTable,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    loss_key: str = "train_loss",
    smooth: int = 5,
) -> FitResult:
    curves = load_curves(table, loss_key, smooth)
    grid, loss, tokens = curve_matrix(curves)
    sizes = np.array([c.N for c in curves])
    env_c, env_n, env_d, env_l = envelope_points(grid, loss, tokens, sizes)
    winners = np.unique(env_n)
    if winners.size < 2:
        raise UserError(
            f"the envelope of {len(curves)} training curves is led by {winners.size} size(s) other than "
            "the smallest and largest; an envelope fit needs runs of several sizes that each lead somewhere"
        )
    params = _envelope_laws(grid, loss, tokens, sizes)
    rng = np.random.default_rng(seed)
    start = {k: params[k] for k in ("E", "A", "alpha")}
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(curves), len(curves))
        boot.append(_envelope_laws(grid, loss[idx], tokens[idx], sizes[idx], start))
    samples = {k: np.array([b[k] for b in boot], dtype=np.float64) for k in params}
    return FitResult(
        law="envelope",
        params=params,
        intervals=intervals(samples, confidence),
        samples={k: v.tolist() for k, v in samples.items()},
        objective=None,
        n_runs=len(curves),
        confidence=confidence,
        conventions={
            "form": "N_opt = k_N C^a, D_opt = k_D C^b; L_opt(C) = E + A C^-alpha",
            "curve_loss": loss_key,
            "smoothing_window": smooth,
            "curve_flops": "cumulative FLOPs logged by the trainer (metrics.jsonl)",
        },
        diagnostics={"envelope_sizes": int(winners.size), "bootstrap": n_boot, "seed": seed},
        table={},
        extra={
            "envelope": {"C": env_c.tolist(), "L": env_l.tolist(), "N": env_n.tolist(), "D": env_d.tolist()}
        },
    )
