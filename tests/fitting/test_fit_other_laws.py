"""Recovery of the compute law, IsoFLOP (approach 2), envelope (approach 1) and Kaplan laws from synthetic
tables with known parameters, and their bad-input errors."""

import json
import warnings

import numpy as np
import pytest
from fit_helpers import HOFFMANN, chinchilla_loss, isoflop_table, make_table

from scaling.errors import UserError
from scaling.fitting import laws
from scaling.fitting.compute_law import fit_compute
from scaling.fitting.envelope import fit_envelope
from scaling.fitting.isoflop import JointProfiles, budget_groups, fit_isoflop, vertices
from scaling.fitting.kaplan import fit_kaplan
from scaling.fitting.table import FitWarning

A_TRUE = HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])


def test_compute_law_recovery_on_the_frontier():
    rng = np.random.default_rng(0)
    true = {"E": 1.7, "A": 300.0, "alpha": 0.15}
    C = np.geomspace(1e15, 1e21, 30)
    L = laws.compute_loss(true, C) * np.exp(rng.normal(0, 0.002, C.size))
    # Mis-sized runs above the frontier must not pull the fit.
    C_all = np.concatenate([C, C[::3] * 1.01])
    L_all = np.concatenate([L, L[::3] * 1.1])
    fit = fit_compute(make_table(np.ones_like(C_all), C_all / 6, L_all, C=C_all), n_boot=40, progress=False)
    assert fit.n_runs <= 30
    assert fit.params["alpha"] == pytest.approx(true["alpha"], abs=0.02)
    assert fit.params["E"] == pytest.approx(true["E"], rel=0.03)
    lo, hi = fit.intervals["alpha"]
    assert lo < true["alpha"] < hi


def test_isoflop_recovers_compute_optimal_exponents():
    fit = fit_isoflop(isoflop_table(), n_boot=100)
    assert fit.params["a"] == pytest.approx(A_TRUE, abs=0.02)
    assert fit.params["b"] == pytest.approx(1 - A_TRUE, abs=0.02)
    n_opt, _ = laws.chinchilla_optimal(HOFFMANN, 1e20)
    assert laws.allocation(fit.params, 1e20)[0] == pytest.approx(n_opt, rel=0.1)
    lo, hi = fit.intervals["a"]
    assert lo <= fit.params["a"] <= hi


def test_isoflop_vertices_fitted_together_recover_an_exact_line():
    # Exact parabolas in log N, each with its own depth and curvature, vertices on log N = 2 + 0.6 log C;
    # the first budget's sizes all lie above its vertex.
    log_c = np.log([1e10, 3e10, 1e11, 3e11])
    N, D, L, B = [], [], [], []
    for i, lc in enumerate(log_c):
        x_opt = 2.0 + 0.6 * lc
        for x in x_opt + np.linspace(0.2 if i == 0 else -1.5, 2.0, 5):
            N.append(np.exp(x))
            D.append(np.exp(lc) / (6 * np.exp(x)))
            L.append(3.0 - 0.2 * i + (0.03 + 0.01 * i) * (x - x_opt) ** 2)
            B.append(np.exp(lc))
    with pytest.warns(FitWarning, match="budget 1e.10 FLOPs: the parabola's minimum .* lies outside"):
        fit = fit_isoflop(make_table(N, D, L, budget=np.array(B)), n_boot=0)
    assert fit.params["a"] == pytest.approx(0.6, abs=1e-6)
    assert fit.params["k_N"] == pytest.approx(np.exp(2.0), rel=1e-5)
    assert [b["L_opt"] for b in fit.extra["budgets"]] == pytest.approx([3.0, 2.8, 2.6, 2.4], abs=1e-6)


def _one_by_one_exponent(table) -> float:
    """Approach 2 as Hoffmann et al. state it: each budget's own parabola vertex, then a line through them."""
    log_c, x_opt = [], []
    for c in np.unique(table.budget):
        m = table.budget == c
        p2, p1, _ = np.polyfit(np.log(table.N[m]), table.L[m], 2)
        if p2 > 0:
            log_c.append(np.log(c))
            x_opt.append(-p1 / (2 * p2))
    return float(np.polyfit(log_c, x_opt, 1)[0])


def test_isoflop_vertices_fitted_together_beat_one_by_one_when_sizes_stop_near_the_minima():
    # A ladder-like grid: 16x of compute, 5 sizes per budget, the smaller budgets' sizes starting at or
    # just below their optimum, 0.75% noise per run (about a CPU ladder's seed-to-seed scatter).
    joint, one_by_one = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        N, D, L, B = [], [], [], []
        for low, c in zip((1.0, 0.8, 0.5, 0.35, 0.25), np.geomspace(1e18, 1.6e19, 5), strict=True):
            for n in laws.chinchilla_optimal(HOFFMANN, c)[0] * np.geomspace(low, 25 * low, 5):
                N.append(n)
                D.append(c / (6 * n))
                L.append(chinchilla_loss(HOFFMANN, n, c / (6 * n)) * np.exp(rng.normal(0, 0.0075)))
                B.append(c)
        table = make_table(N, D, L, budget=np.array(B))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)  # minima outside some budgets' sizes, as meant
            joint.append(abs(fit_isoflop(table, n_boot=0).params["a"] - A_TRUE))
        one_by_one.append(abs(_one_by_one_exponent(table) - A_TRUE))
    assert np.median(joint) < 0.85 * np.median(one_by_one)


def test_joint_isoflop_jacobian_matches_central_differences():
    table = isoflop_table(noise=0.01)
    problem = JointProfiles(table, vertices(table, budget_groups(table)))
    p = problem.start + np.random.default_rng(1).normal(0, 0.1, problem.start.size)
    step = 1e-6
    numeric = np.stack(
        [
            (problem.residuals(p + step * e) - problem.residuals(p - step * e)) / (2 * step)
            for e in np.eye(p.size)
        ],
        axis=1,
    )
    np.testing.assert_allclose(problem.jacobian(p), numeric, rtol=1e-6, atol=1e-8)


def test_isoflop_needs_two_budgets():
    with pytest.raises(UserError, match=r"at least 2 compute budgets.*1 budget and 1 usable"):
        fit_isoflop(isoflop_table(budgets=(1e19,)), n_boot=10)


def test_isoflop_budget_without_a_minimum_is_skipped_with_a_warning():
    table = isoflop_table(budgets=(1e18, 1e19, 1e20, 1e21))
    keep = ~((table.budget == 1e21) & (np.arange(len(table)) % 9 > 1))  # 1e21 left with 2 sizes
    with pytest.warns(FitWarning, match="has 2 model sizes"):
        fit = fit_isoflop(table.subset(keep), n_boot=10)
    assert fit.diagnostics["usable_budgets"] == 3


def test_envelope_recovers_allocation_from_training_curves(tmp_path):
    sizes = np.geomspace(2e7, 2e9, 9)
    dirs, final_d, final_l = [], [], []
    for i, n in enumerate(sizes):
        d = tmp_path / f"run{i}"
        d.mkdir()
        tokens = np.geomspace(1e7, 3e3 * n, 200)
        with (d / "metrics.jsonl").open("w") as f:
            for step, t in enumerate(tokens):
                row = {
                    "step": step,
                    "tokens": t,
                    "flops": 6 * n * t,
                    "train_loss": chinchilla_loss(HOFFMANN, n, t),
                }
                f.write(json.dumps(row) + "\n")
        dirs.append(str(d))
        final_d.append(tokens[-1])
        final_l.append(chinchilla_loss(HOFFMANN, n, tokens[-1]))
    table = make_table(sizes, final_d, final_l)
    table = type(table)(**{**table.__dict__, "run_dirs": tuple(dirs)})
    fit = fit_envelope(table, n_boot=30, smooth=1)
    assert fit.params["a"] == pytest.approx(A_TRUE, abs=0.03)
    assert fit.params["b"] == pytest.approx(1 - A_TRUE, abs=0.03)


def test_envelope_without_curves_is_an_error():
    table = isoflop_table()
    with pytest.raises(UserError, match=r"needs the runs. metrics\.jsonl"):
        fit_envelope(table, n_boot=0)


def test_kaplan_recovery():
    true = {"alpha_N": 0.076, "N_c": 8.8e13, "alpha_D": 0.095, "D_c": 5.4e13}
    N = np.geomspace(1e6, 1e9, 8)
    # Loss limited by the scarcer resource, L = max(L(N), L(D)), with the ranges meeting at the corner, so the
    # lowest loss per N lies exactly on L(N) and the lowest per D exactly on L(D).
    d_max = true["D_c"] / laws.kaplan_loss_n(true, N[-1]) ** (1 / true["alpha_D"])
    D = np.geomspace(d_max / 1e3, d_max, 8)
    NN, DD = (g.ravel() for g in np.meshgrid(N, D))
    L = np.maximum(laws.kaplan_loss_n(true, NN), laws.kaplan_loss_d(true, DD))
    fit = fit_kaplan(make_table(NN, DD, L), n_boot=40, progress=False)
    for name, value in true.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-5)
