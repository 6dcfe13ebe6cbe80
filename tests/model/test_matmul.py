"""dense and weight_gradient: the hand-laid-out backward against float64 numpy, in both orientations of the
weight gradient ([small, large] formed directly, [large, small] formed transposed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling.model.matmul import dense, weight_gradient


@pytest.mark.parametrize(("inputs", "outputs"), [(8, 24), (24, 8), (16, 16)])
def test_dense_gradients_match_float64(inputs: int, outputs: int) -> None:
    rng = np.random.default_rng(0)
    shapes = ((40, inputs), (inputs, outputs), (40, outputs))
    x_NxI, w_IxO, g_NxO = (rng.standard_normal(s) for s in shapes)
    y_NxO, vjp = jax.vjp(dense, jnp.asarray(x_NxI, jnp.float32), jnp.asarray(w_IxO, jnp.float32))
    dx_NxI, dw_IxO = vjp(jnp.asarray(g_NxO, jnp.float32))
    np.testing.assert_allclose(y_NxO, x_NxI @ w_IxO, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx_NxI, g_NxO @ w_IxO.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw_IxO, x_NxI.T @ g_NxO, rtol=1e-5, atol=1e-5)
    assert dw_IxO.shape == (inputs, outputs)


def test_gradients_keep_the_operands_dtype() -> None:
    x_NxI = jnp.ones((8, 4), jnp.bfloat16)
    w_IxO = jnp.ones((4, 6), jnp.bfloat16)
    dx, dw = jax.grad(lambda x, w: dense(x, w).astype(jnp.float32).sum(), argnums=(0, 1))(x_NxI, w_IxO)
    assert dx.dtype == dw.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(dw, np.float32), np.full((4, 6), 8.0))


def test_weight_gradient_of_mixed_dtypes_is_float32() -> None:
    dw = weight_gradient(jnp.ones((8, 4), jnp.bfloat16), jnp.ones((8, 2), jnp.float32))
    assert dw.dtype == jnp.float32 and dw.shape == (4, 2)
