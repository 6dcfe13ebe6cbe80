"""The JAX objective and batched L-BFGS against independent float64 numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling.fitting.lbfgs import minimize
from scaling.fitting.objective import HUBER_DELTA, huber_lse_value_and_grad, huber_lse_value_numpy


def _data(seed=0, n=40):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))
    L = (1.7 + 400 / N**0.34 + 410 / D**0.28) * np.exp(rng.normal(0, 0.01, n))
    return np.stack([np.log(N), np.log(D)]), np.log(L)


def test_objective_and_gradient_match_numpy_and_finite_differences():
    X, y = _data()
    w = np.random.default_rng(1).integers(0, 3, y.size).astype(np.float64)
    x = np.array([[6.0, 6.1, 0.34, 0.28, 0.5], [3.0, 9.0, 0.2, 0.4, 0.1]])
    with jax.enable_x64(True):
        f, g = huber_lse_value_and_grad(jnp.asarray(x), {"X": X, "y": y, "w": w, "delta": HUBER_DELTA})
        f, g = np.asarray(f), np.asarray(g)
    for i in range(2):
        assert f[i] == pytest.approx(huber_lse_value_numpy(x[i], X, y, w), rel=1e-12)
        h = 1e-6
        fd = [
            (huber_lse_value_numpy(x[i] + h * e, X, y, w) - huber_lse_value_numpy(x[i] - h * e, X, y, w))
            / (2 * h)
            for e in np.eye(5)
        ]
        np.testing.assert_allclose(g[i], fd, rtol=1e-5, atol=1e-9)


def _rosenbrock_vg(x, data):
    a, b = x[:, 0], x[:, 1]
    f = (data["c"] - a) ** 2 + 100.0 * (b - a * a) ** 2
    g = jnp.stack([-2 * (data["c"] - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)], axis=1)
    return f, g


def test_batched_lbfgs_finds_each_problems_minimum():
    starts = np.array([[-1.2, 1.0], [2.0, -1.0], [0.0, 0.0], [3.0, 3.0]])
    res = minimize(_rosenbrock_vg, starts, {"c": np.array([1.0, 2.0, 0.5, -1.0])})
    assert jnp.zeros(1).dtype == jnp.float32  # float64 was enabled for the fit only
    assert res.converged.all()
    np.testing.assert_allclose(res.x[:, 0], [1.0, 2.0, 0.5, -1.0], atol=1e-6)
    np.testing.assert_allclose(res.x[:, 1], res.x[:, 0] ** 2, atol=1e-6)
    assert (res.f < 1e-12).all()
