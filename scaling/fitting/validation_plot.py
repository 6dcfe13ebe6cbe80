"""`validation.png`: the predictions of each law against the target runs they predicted.

Left: predicted against actual loss with the prediction intervals, the diagonal being a perfect
prediction. Right: the ladder runs and the targets against compute, with each law's compute-optimal
loss curve fitted on the ladder and extended through the targets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scaling.fitting.plot import optimal_loss
from scaling.fitting.table import RunTable
from scaling.fitting.validate import LawValidation


def plot_validation(
    ladder: RunTable, targets: RunTable, results: tuple[LawValidation, ...], out: Path
) -> Path:
    fig = Figure(figsize=(12, 5), constrained_layout=True)
    left, right = fig.subplots(1, 2)
    fitted = [r for r in results if r.rows]
    for i, result in enumerate(fitted):
        _predicted_vs_actual(left, result, f"C{i}")
        _curve(right, result, ladder, targets, f"C{i}")
    values = np.concatenate([targets.L, *[[row.predicted for row in r.rows] for r in fitted]])
    lo, hi = float(np.nanmin(values)) * 0.97, float(np.nanmax(values)) * 1.03
    left.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="perfect")
    left.set(xlabel="actual final loss", ylabel="predicted loss", title="targets: predicted vs actual")
    left.legend(fontsize=8)
    right.scatter(ladder.C, ladder.L, s=12, color="0.6", label="ladder runs")
    right.scatter(targets.C, targets.L, s=60, marker="*", color="k", zorder=5, label="targets (actual)")
    right.set(xscale="log", xlabel="training FLOPs C", ylabel="final loss", title="fitted on the ladder")
    right.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def _predicted_vs_actual(ax, result: LawValidation, color: str) -> None:
    """Points at (actual, predicted), the interval a vertical bar (a point estimate may fall outside its
    bootstrap interval, so the bar is drawn from its ends, not as +/- errors)."""
    actual = np.array([r.actual for r in result.rows])
    predicted = np.array([r.predicted for r in result.rows])
    label = f"{result.law} (median ARE {result.median_are:.1%})"
    ax.scatter(actual, predicted, color=color, label=label, zorder=3)
    for row in result.rows:
        if row.interval:
            ax.vlines(row.actual, *row.interval, color=color, lw=2, alpha=0.5)


def _curve(ax, result: LawValidation, ladder: RunTable, targets: RunTable, color: str) -> None:
    fn = None if result.fit is None else optimal_loss(result.fit)
    if fn is None:
        return
    c = np.geomspace(float(ladder.C.min()), float(targets.C.max()) * 1.5, 100)
    with np.errstate(all="ignore"):
        ax.plot(c, fn(result.fit.params, c), color=color, lw=1.2, label=f"{result.law}: L_opt(C)")
