"""Approach 3: recovery of known parameters, agreement with an independent scipy polish, and the flags."""

import warnings

import numpy as np
import pytest
from fit_helpers import chinchilla_loss, make_table
from scipy.optimize import minimize as scipy_minimize

from scaling.errors import UserError
from scaling.fitting import huber_fit
from scaling.fitting.chinchilla import fit_chinchilla, hoffmann_grid
from scaling.fitting.lbfgs import LbfgsOptions
from scaling.fitting.objective import huber_lse_value_numpy
from scaling.fitting.table import FitWarning

TRUE = {"E": 1.82, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3658}  # Besiroglu et al. refit
N_BOOT = 40


def _synthetic(n=64, noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e10), n))
    D = np.exp(rng.uniform(np.log(5e9), np.log(2e12), n))
    L = chinchilla_loss(TRUE, N, D) * np.exp(rng.normal(0, noise, n))
    return make_table(N, D, L)


@pytest.fixture(scope="module")
def fitted():
    table = _synthetic()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)  # a clean table must fit without any warning
        fit = fit_chinchilla(table, n_boot=N_BOOT, progress=False)
    return table, fit


def test_recovers_known_parameters(fitted):
    _, fit = fitted
    p = fit.params
    assert p["alpha"] == pytest.approx(TRUE["alpha"], abs=0.03)
    assert p["beta"] == pytest.approx(TRUE["beta"], abs=0.03)
    assert p["E"] == pytest.approx(TRUE["E"], rel=0.03)
    true_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    assert p["a"] == pytest.approx(true_a, abs=0.02)
    assert p["a"] + p["b"] == pytest.approx(1.0, abs=1e-12)
    assert p["A"] == np.exp(np.log(p["A"]))  # unrounded: the float is what the optimiser returned
    assert fit.diagnostics["converged"] and not fit.diagnostics["optimum_outside_grid"]


def test_optimum_survives_an_independent_scipy_polish(fitted):
    table, fit = fitted
    p = fit.params
    X = np.stack([np.log(table.N), np.log(table.D)])
    y, w = np.log(table.L), np.ones(len(table))
    x = np.array([np.log(p["A"]), np.log(p["B"]), p["alpha"], p["beta"], np.log(p["E"])])
    ours = huber_lse_value_numpy(x, X, y, w)
    assert ours == pytest.approx(fit.objective, rel=1e-12)
    res = scipy_minimize(
        lambda v: huber_lse_value_numpy(v, X, y, w),
        x,
        method="Nelder-Mead",
        options={"xatol": 1e-12, "fatol": 1e-18, "maxiter": 1500},
    )
    assert res.fun >= ours * (1 - 1e-9)


def test_bootstrap_intervals_bracket_the_estimate_and_truth(fitted):
    _, fit = fitted
    for name in ("alpha", "beta", "E"):
        lo, hi = fit.intervals[name]
        assert lo < fit.params[name] < hi
        assert lo < TRUE[name] < hi
    assert len(fit.samples["alpha"]) == N_BOOT


def test_fewer_runs_than_parameters_is_an_error():
    table = _synthetic(n=4)
    with pytest.raises(UserError, match="4 runs cannot determine 5 free parameters"):
        fit_chinchilla(table, n_boot=0, progress=False)


def test_optimum_outside_the_grid_is_flagged():
    table = _synthetic()
    # Same shape as the default grid (no new compilation), but true alpha, beta ~0.35 lie below every start.
    grid = hoffmann_grid(exponents=(1.0, 1.25, 1.5, 1.75, 2.0))
    with pytest.warns(FitWarning) as record:
        fit = fit_chinchilla(table, n_boot=N_BOOT, grid=grid, progress=False)
    messages = [str(w.message) for w in record]
    assert any("outside the grid of starts in alpha, beta" in m for m in messages)
    assert any("reached only from starts on the grid's boundary: widen the grid" in m for m in messages)
    assert fit.diagnostics["optimum_outside_grid"] == ["alpha", "beta"]
    # Every start that reached the optimum began at alpha or beta = 1.0, the grid's lower edge.
    assert fit.diagnostics["best_reached_only_from_boundary"]


def test_non_convergence_is_flagged(monkeypatch):
    table = _synthetic()
    monkeypatch.setattr(huber_fit, "POLISH_OPTIONS", LbfgsOptions(max_evals=2, gtol=1e-30, ftol=0.0))
    with pytest.warns(FitWarning) as record:
        fit = fit_chinchilla(table, n_boot=N_BOOT, progress=False)
    messages = [str(w.message) for w in record]
    assert any("did not converge" in m for m in messages)
    assert f"{N_BOOT} of {N_BOOT} bootstrap refits failed to converge" in messages
    assert not fit.diagnostics["converged"]
