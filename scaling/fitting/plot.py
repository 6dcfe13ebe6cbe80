"""Figures of a fit, each written as PNG and SVG (matplotlib `Figure` objects, no pyplot global state).

    make_plots(table, fit, "plots/", target_compute=1e21)  # -> list of written paths

- `loss_vs_compute`: runs coloured by size, the compute-efficient frontier, the fitted law and its bootstrap
  band extrapolated out to the target compute;
- `isoflop`: loss against N per compute budget with each parabola and its minimum;
- `allocation`: N_opt and D_opt against C from the fit (with bands) and the IsoFLOP minima;
- `residuals`: log(predicted / actual) per run against compute;
- `training_curves`: each run's loss against cumulative FLOPs, coloured by model size (needs metrics.jsonl).
Figures whose data is missing (e.g. no run directories) are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scaling.fitting import laws
from scaling.fitting.envelope import read_curve
from scaling.fitting.isoflop import budget_groups, joint_vertices, vertices
from scaling.fitting.predict import loss_fn
from scaling.fitting.result import FitResult
from scaling.fitting.table import RunTable, frontier_mask

_BAND_POINTS = 120


def optimal_loss(fit: FitResult):
    """L at the compute-optimal allocation as a function (params, C), or None."""
    if fit.law == "chinchilla":
        k = float(fit.conventions.get("flops_per_param_token", 6.0))
        return lambda p, c: laws.chinchilla_loss(p, *laws.chinchilla_optimal(p, c, k))
    if fit.law in ("compute", "isoflop", "envelope") and np.isfinite(fit.params.get("E", np.nan)):
        return laws.compute_loss
    return None


def _allocation(fit: FitResult):
    if fit.law == "chinchilla":
        k = float(fit.conventions.get("flops_per_param_token", 6.0))
        return lambda p, c: laws.chinchilla_optimal(p, c, k)
    if fit.law in ("isoflop", "envelope"):
        return laws.allocation
    return None


def _band(fit: FitResult, fn, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    samples = fit.sample_arrays()
    if not samples or not next(iter(samples.values())).size:
        return None
    n_samples = next(iter(samples.values())).size
    with np.errstate(all="ignore"):
        values = np.stack([fn({k: v[i] for k, v in samples.items()}, c) for i in range(n_samples)])
    tail = 50.0 * (1.0 - fit.confidence)
    return np.nanpercentile(values, tail, axis=0), np.nanpercentile(values, 100.0 - tail, axis=0)


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def _mappable(values: np.ndarray, cmap: str) -> ScalarMappable:
    """Log colour scale over `values` (a degenerate range is widened so the norm stays valid)."""
    norm = LogNorm(vmin=values.min(), vmax=max(values.max(), values.min() * 1.0001))
    return ScalarMappable(norm=norm, cmap=cmap)


def plot_loss_vs_compute(table: RunTable, fit: FitResult, target: float) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    sizes = _mappable(table.N, "viridis")
    ax.scatter(table.C, table.L, color=sizes.to_rgba(table.N), s=18, label="runs", zorder=3)
    fig.colorbar(sizes, ax=ax, label="parameters N")
    front = frontier_mask(table.C, table.L)
    order = np.argsort(table.C[front])
    ax.step(table.C[front][order], table.L[front][order], where="post", color="k", lw=1, label="frontier")
    fn = optimal_loss(fit)
    if fn is not None:
        c = np.geomspace(table.C.min(), max(target, table.C.max()), _BAND_POINTS)
        ax.plot(c, fn(fit.params, c), color="C3", label=f"{fit.law} fit")
        band = _band(fit, fn, c)
        if band is not None:
            ax.fill_between(c, *band, color="C3", alpha=0.2, label=f"{fit.confidence:.0%} bootstrap band")
        if target > table.C.max():
            ax.axvline(target, color="grey", ls=":", label=f"target {target:.2g} FLOPs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"training compute C (FLOPs, {table.spec.flops})")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Loss vs compute")
    ax.legend(fontsize=8)
    return fig


def plot_isoflop(table: RunTable) -> Figure | None:
    points = joint_vertices(table, vertices(table, budget_groups(table)))
    if not points:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    budgets = _mappable(np.array([v.C for v in points]), "plasma")
    fig.colorbar(budgets, ax=ax, label="budget C (FLOPs)")
    for v in points:
        colour = budgets.to_rgba(v.C)
        n, loss = table.N[v.members], table.L[v.members]
        ax.scatter(n, loss, color=colour, s=16)
        x = np.linspace(np.log(n.min()), np.log(n.max()), 60)
        p2, p1, p0 = v.parabola
        ax.plot(np.exp(x), p2 * x * x + p1 * x + p0, color=colour, lw=1)
        ax.scatter([v.N_opt], [v.L_opt], color=colour, marker="*", s=90, edgecolor="k", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel(f"parameters N ({table.spec.params})")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("IsoFLOP profiles, fitted together (stars: minima on the N_opt line)")
    return fig


def plot_allocation(table: RunTable, fit: FitResult, target: float) -> Figure | None:
    fn = _allocation(fit)
    if fn is None:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    c = np.geomspace(table.C.min(), max(target, table.C.max()), _BAND_POINTS)
    n_opt, d_opt = fn(fit.params, c)
    ax.plot(c, n_opt, color="C0", label="N_opt (parameters)")
    ax.plot(c, d_opt, color="C1", label="D_opt (tokens)")
    for i, colour in ((0, "C0"), (1, "C1")):
        band = _band(fit, lambda p, cc, i=i: fn(p, cc)[i], c)
        if band is not None:
            ax.fill_between(c, *band, color=colour, alpha=0.2)
    points = vertices(table, budget_groups(table))
    if points:
        ax.scatter([v.C for v in points], [v.N_opt for v in points], color="C0", marker="*", s=60)
        ax.scatter([v.C for v in points], [v.D_opt for v in points], color="C1", marker="*", s=60)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("compute-optimal N (parameters) and D (tokens)")
    ax.set_title(f"Compute-optimal allocation ({fit.law}; stars: IsoFLOP minima)")
    ax.legend(fontsize=8)
    return fig


def plot_residuals(table: RunTable, fit: FitResult) -> Figure | None:
    fn = loss_fn(fit)
    if fn is not None:
        mask = np.ones(len(table), dtype=bool)
        predicted = fn(fit.params, table.N, table.D)
    else:
        opt = optimal_loss(fit)
        if opt is None:
            return None
        mask = frontier_mask(table.C, table.L)
        predicted = opt(fit.params, table.C[mask])
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    ax.axhline(0.0, color="k", lw=0.8)
    sizes = _mappable(table.N[mask], "viridis")
    ax.scatter(table.C[mask], np.log(predicted / table.L[mask]), color=sizes.to_rgba(table.N[mask]), s=16)
    fig.colorbar(sizes, ax=ax, label="parameters N")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("log(predicted / actual loss)")
    ax.set_title(f"Residuals of the {fit.law} fit" + ("" if fn is not None else " (frontier runs)"))
    return fig


def plot_training_curves(table: RunTable) -> Figure | None:
    curves = [
        read_curve(d, name, float(n), "train_loss", smooth=1)
        for name, d, n in zip(table.names, table.run_dirs, table.N, strict=True)
        if d
    ]
    curves = [c for c in curves if c is not None]
    if not curves:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    sizes = _mappable(np.array([c.N for c in curves]), "viridis")
    for c in curves:
        ax.plot(c.flops, c.loss, color=sizes.to_rgba(c.N), lw=0.8, alpha=0.8)
    fig.colorbar(sizes, ax=ax, label="parameters N")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cumulative training compute (FLOPs)")
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title("Training curves")
    return fig


def make_plots(
    table: RunTable, fit: FitResult, out: str | Path, target_compute: float | None = None
) -> list[Path]:
    """Write every figure that the data allows into `out` (a directory), as PNG and SVG; returns the paths.
    If `out` ends in .png or .svg, the loss-vs-compute figure goes there and the others next to it, named
    `<stem>_<figure>`."""
    out = Path(out)
    if out.suffix.lower() in (".png", ".svg"):
        out_dir, prefix, main = out.parent, f"{out.stem}_", out
    else:
        out_dir, prefix, main = out, "", None
    out_dir.mkdir(parents=True, exist_ok=True)
    target = float(target_compute) if target_compute else float(table.C.max())
    figures = {
        "loss_vs_compute": plot_loss_vs_compute(table, fit, target),
        "isoflop": plot_isoflop(table),
        "allocation": plot_allocation(table, fit, target),
        "residuals": plot_residuals(table, fit),
        "training_curves": plot_training_curves(table),
    }
    paths = []
    for name, fig in figures.items():
        if fig is None:
            continue
        if main is not None and name == "loss_vs_compute":
            paths.extend(_save(fig, out_dir, out.stem))
        else:
            paths.extend(_save(fig, out_dir, prefix + name))
    return paths
