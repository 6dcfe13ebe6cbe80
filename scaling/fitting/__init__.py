"""The analysis wing: fit scaling laws to a results table, extrapolate with bootstrap intervals, plot.

Modules, bottom up: `table` (read and validate runs) -> `objective`, `lbfgs` (batched Huber/L-BFGS in JAX)
-> `huber_fit`, `bootstrap` -> one module per law (`chinchilla`, `compute_law`, `isoflop`, `envelope`,
`kaplan`) -> `identify`, `fit` (`fit_table`) -> `result` (FIT.json, checked on load by `fit_schema`) ->
`predict`, `backtest`, `validate`, `plot` -> `cli`. No model code is imported, so a published table can
be fitted without the trainer.

Python API (what the CLI calls; the sweep and demo code can call it directly):

    load_table(source, columns=ColumnMap(), params="nonembedding", flops="exact",
               statuses=("completed",), drop_invalid=False) -> RunTable
    fit_table(table, law="chinchilla", options=FitOptions()) -> FitResult      # FitResult.save / .load
    predict(fit, params, tokens) -> Prediction
    predict_compute(fit, compute) -> Prediction
    backtest(table, law, fit_max, test_min=None, options=None) -> BacktestResult
    validate(ladder_table, target_table, laws, options) -> tuple[LawValidation, ...]   # fitting.validate
    make_plots(table, fit, out, target_compute=None) -> list[Path]

JAX is imported only when a law is fitted and matplotlib only by `make_plots`, so importing this package
(and `scaling --help`) stays light.
"""

from __future__ import annotations

from scaling.fitting.backtest import BacktestResult, backtest
from scaling.fitting.fit import FitOptions, fit_table
from scaling.fitting.predict import Prediction, predict, predict_compute
from scaling.fitting.result import FitResult
from scaling.fitting.table import ColumnMap, FitWarning, RunTable, load_table

__all__ = [
    "BacktestResult",
    "ColumnMap",
    "FitOptions",
    "FitResult",
    "FitWarning",
    "Prediction",
    "RunTable",
    "backtest",
    "fit_table",
    "load_table",
    "make_plots",
    "predict",
    "predict_compute",
]


def make_plots(*args, **kwargs):
    """See `scaling.fitting.plot.make_plots` (imported on first use: matplotlib is slow to import)."""
    from scaling.fitting.plot import make_plots as _make_plots

    return _make_plots(*args, **kwargs)
