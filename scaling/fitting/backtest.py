"""Backtest: fit on the cheap runs, predict the expensive ones, report the errors.

    result = backtest(table, law="chinchilla", fit_max=1e18, test_min=1e19)
    result.median_are, result.max_are      # absolute relative errors, as fractions

This is how a user checks whether a ladder of ~1/1000 of the target compute is enough. Laws that predict
L(N, D) (chinchilla, kaplan) are tested on every run with compute >= test_min; laws that only predict the
compute-optimal loss L(C) (compute, isoflop, envelope) are tested on the frontier runs among them (the best
loss at their compute), since no law of C can know how badly a mis-sized run does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.errors import UserError
from scaling.fitting import laws
from scaling.fitting.fit import FitOptions, fit_table
from scaling.fitting.predict import loss_fn
from scaling.fitting.result import FitResult
from scaling.fitting.table import RunTable, frontier_mask


@dataclass(frozen=True)
class BacktestRow:
    name: str
    compute: float
    predicted: float
    actual: float
    are: float
    extrapolation: float


@dataclass(frozen=True)
class BacktestResult:
    law: str
    fit_max: float
    test_min: float
    fit_runs: int
    rows: tuple[BacktestRow, ...]
    median_are: float
    max_are: float
    fit: FitResult

    def to_dict(self) -> dict:
        return {
            "law": self.law,
            "fit_max": self.fit_max,
            "test_min": self.test_min,
            "fit_runs": self.fit_runs,
            "runs": [row.__dict__ for row in self.rows],
            "median_are": self.median_are,
            "max_are": self.max_are,
        }


def backtest(
    table: RunTable,
    law: str,
    fit_max: float,
    test_min: float | None = None,
    options: FitOptions | None = None,
) -> BacktestResult:
    test_min = fit_max if test_min is None else test_min
    if test_min < fit_max:
        raise UserError(
            f"--test-min {test_min:.3g} is below --fit-max {fit_max:.3g}: the backtest would score runs the "
            "law was fitted on; give --test-min >= --fit-max"
        )
    train = table.C <= fit_max
    test = table.C >= test_min
    if law in ("compute", "isoflop", "envelope"):
        test &= frontier_mask(table.C, table.L)
    if not train.any():
        raise UserError(f"no runs with compute <= {fit_max:.3g} to fit on (smallest: {table.C.min():.3g})")
    if not test.any():
        raise UserError(f"no runs with compute >= {test_min:.3g} to test on (largest: {table.C.max():.3g})")
    fit = fit_table(table.subset(train), law, options or FitOptions(n_boot=0))
    fn = loss_fn(fit)
    test_table = table.subset(test)
    if fn is not None:
        predicted = fn(fit.params, test_table.N, test_table.D)
    else:
        if not np.isfinite(fit.params.get("E", np.nan)):
            raise UserError(f"the {law} fit on runs <= {fit_max:.3g} FLOPs has no loss law (too few budgets)")
        predicted = laws.compute_loss(fit.params, test_table.C)
    are = np.abs(predicted - test_table.L) / test_table.L
    largest = float(table.C[train].max())
    rows = tuple(
        BacktestRow(name, float(c), float(p), float(a), float(e), float(c / largest))
        for name, c, p, a, e in zip(test_table.names, test_table.C, predicted, test_table.L, are, strict=True)
    )
    return BacktestResult(
        law=law,
        fit_max=float(fit_max),
        test_min=float(test_min),
        fit_runs=int(train.sum()),
        rows=rows,
        median_are=float(np.median(are)),
        max_are=float(np.max(are)),
        fit=fit,
    )
