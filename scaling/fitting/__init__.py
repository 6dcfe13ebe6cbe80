"""The analysis wing: fit scaling laws to a results table, extrapolate with bootstrap intervals, plot.

Modules, bottom up: `table` (read and validate runs) -> `objective`, `lbfgs` (batched Huber/L-BFGS in JAX)
-> `huber_fit`, `bootstrap` -> one module per law (`chinchilla`, `compute_law`, `isoflop`, `envelope`,
`kaplan`) -> `fit` (`fit_table`) -> `predict`, `backtest`, `plot` -> `cli`. No model code is imported, so a
published table can be fitted without the trainer.
"""
