"""traced_matmuls: counts and FLOPs of dot_generals against shapes worked out by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scaling.model.traced_matmuls import matmuls_of, total_flops


def test_batched_matmul_flops_by_hand() -> None:
    q_BxTxK = jnp.zeros((3, 5, 7))
    k_BxSxK = jnp.zeros((3, 11, 7))
    found = matmuls_of(lambda q, k: jnp.einsum("btk,bsk->bts", q, k), q_BxTxK, k_BxSxK)
    ((matmul, count),) = found.items()
    assert count == 1
    assert matmul.flops == 2 * 3 * 5 * 11 * 7


def test_scan_bodies_count_times_their_length_and_grad_adds_two_matmuls() -> None:
    w_DxD = jnp.zeros((4, 4))
    x_NxD = jnp.zeros((6, 4))

    def loss(w):
        y, _ = jax.lax.scan(lambda h, _: (h @ w, None), x_NxD, None, length=5)
        return y.sum()

    forward = matmuls_of(loss, w_DxD)
    training = matmuls_of(jax.grad(loss), w_DxD)
    assert sum(forward.values()) == 5
    assert total_flops(forward) == 5 * 2 * 6 * 4 * 4
    assert total_flops(training) == 3 * total_flops(forward)
