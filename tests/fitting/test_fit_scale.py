"""Fits of large tables: batches bounded by a memory budget give the numbers of one batch."""

import jax.numpy as jnp
import numpy as np
import pytest
from fit_helpers import isoflop_table

from scaling.fitting import huber_fit
from scaling.fitting.bootstrap import ResampleStream
from scaling.fitting.chinchilla import fit_chinchilla, hoffmann_grid, to_paper
from scaling.fitting.lbfgs import minimize


def test_resample_stream_gives_the_resamples_of_one_draw_however_split():
    n, n_boot = 13, 20
    draws = np.random.default_rng(5).integers(0, n, size=(n_boot, n))
    expected = np.array([np.bincount(row, minlength=n) for row in draws], dtype=np.float64)
    stream = ResampleStream(n, np.random.default_rng(5))
    # Requests as the polish makes them: in order, a boundary resample asked for twice, empty ones.
    got = [stream.counts(0, 0), stream.counts(0, 3), stream.counts(2, 9), stream.counts(8, 20)]
    np.testing.assert_array_equal(got[1], expected[:3])
    np.testing.assert_array_equal(got[2], expected[2:9])
    np.testing.assert_array_equal(got[3], expected[8:])
    assert got[0].shape == (0, n) and (expected.sum(axis=1) == n).all()


def _rosenbrock_vg(x, data):
    a, b, c = x[:, 0], x[:, 1], data["c"]
    f = (c - a) ** 2 + 100.0 * (b - a * a) ** 2
    g = jnp.stack([-2 * (c - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)], axis=1)
    return f, g


def test_minimize_in_refilled_small_batches_equals_one_batch():
    rng = np.random.default_rng(0)
    starts = rng.uniform(-2, 2, size=(11, 2))
    c = rng.uniform(-1.5, 1.5, size=11)

    def rows(first, stop):
        return {"c": c[first:stop]}

    whole = minimize(_rosenbrock_vg, starts, {}, rows=rows)
    small = minimize(_rosenbrock_vg, starts, {}, batch=3, rows=rows)
    for field in ("x", "f", "evals", "status"):
        np.testing.assert_array_equal(getattr(small, field), getattr(whole, field))
    assert small.converged.all() and (whole.evals > 10).all()
    np.testing.assert_allclose(small.x, np.stack([c, c * c], axis=1), atol=1e-6)


def test_chunked_bootstrap_gives_the_replicates_of_one_batch(monkeypatch):
    table = isoflop_table()
    X, y = np.stack([np.log(table.N), np.log(table.D)]), np.log(table.L)
    batches = []

    def recording(*args, batch=None, **kwargs):
        batches.append(batch)
        return minimize(*args, batch=batch, **kwargs)

    monkeypatch.setattr(huber_fit, "minimize", recording)
    grid, names = hoffmann_grid(), ("a", "b", "alpha", "beta", "e")
    whole = huber_fit.fit_huber(X, y, grid, names, n_boot=30, seed=3, progress=False)
    tiny = huber_fit.fit_huber(X, y, grid, names, n_boot=30, seed=3, progress=False, memory_budget=1)
    assert batches[0] == len(grid) and batches[1] >= 30 and batches[2:] == [8, 8]
    # Same resamples, same starts; XLA's CPU exp/log differ in the last bit between batch shapes, so the
    # refits agree to the polish's convergence, not bit for bit (a different resample moves E by ~1e-2).
    for name, values in to_paper(whole.boot_x).items():
        np.testing.assert_allclose(to_paper(tiny.boot_x)[name], values, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(tiny.x, whole.x, rtol=1e-6)
    assert tiny.objective == pytest.approx(whole.objective, rel=1e-12) and np.isfinite(whole.boot_x).all()
    assert tiny.diagnostics["converged"] and tiny.diagnostics["bootstrap_failed"] == 0
    assert np.std(to_paper(whole.boot_x)["E"]) > 1e-3


def test_grid_on_a_subsample_of_runs_reaches_the_full_fit(monkeypatch):
    table = isoflop_table(noise=0.01)
    full = fit_chinchilla(table, n_boot=0, progress=False)
    monkeypatch.setattr(huber_fit, "GRID_RUNS", 12)
    sub = fit_chinchilla(table, n_boot=0, progress=False)
    assert full.diagnostics["grid_runs"] == 36 and sub.diagnostics["grid_runs"] == 12
    assert sub.diagnostics["converged"] and sub.diagnostics["starts_reaching_best"] > 0
    assert sub.objective == pytest.approx(full.objective, rel=1e-12)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert sub.params[name] == pytest.approx(full.params[name], rel=1e-6)
