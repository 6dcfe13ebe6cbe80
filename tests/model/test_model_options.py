"""Options that change how the decoder runs, not what it computes: rematerialisation (same loss and
gradients, less memory kept for the backward pass) and the fused attention path (the same function as our
einsum softmax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling.model.config import ModelConfig
from scaling.model.decoder import GPT
from scaling.train.loss import cross_entropy_sum

BASE = ModelConfig(V=64, T=64, D=32, L=2, H=2)


def _loss_and_grad(cfg: ModelConfig, tokens_BxT1: np.ndarray):
    graphdef, params = nnx.split(GPT(cfg, nnx.Rngs(7)), nnx.Param)

    def loss(params):
        model = nnx.merge(graphdef, params)
        total, count = cross_entropy_sum(model(tokens_BxT1[:, :-1]), tokens_BxT1[:, 1:])
        return total / count

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    # What the forward pass keeps for the backward one: the residuals the vjp closes over. (XLA:CPU's
    # memory analysis reports one temporary buffer size whatever the policy, so it cannot show this.)
    residuals = jax.eval_shape(lambda p: jax.vjp(loss, p)[1], params)
    kept_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(residuals))
    return float(value), jax.tree.leaves(grads), kept_bytes


@pytest.fixture(scope="module")
def tokens() -> np.ndarray:
    return np.random.default_rng(0).integers(0, BASE.V, (4, BASE.T + 1), dtype=np.int32)


@pytest.mark.parametrize(("remat", "at_most"), [("block", 0.3), ("dots", 0.9)])
def test_remat_changes_memory_not_results(tokens, remat, at_most):
    loss, grads, kept = _loss_and_grad(BASE, tokens)
    loss_r, grads_r, kept_r = _loss_and_grad(BASE.replace(remat=remat), tokens)
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    for g_r, g in zip(grads_r, grads, strict=True):
        np.testing.assert_allclose(g_r, g, rtol=1e-5, atol=1e-7)
    assert kept_r < at_most * kept, (
        f"remat={remat} keeps {kept_r} bytes for the backward pass, without it {kept}"
    )


def test_fused_attention_is_the_same_function_as_ours():
    cfg = BASE
    attention = GPT(cfg, nnx.Rngs(3)).blocks[0].attn
    x_BxTxD = jax.random.normal(jax.random.key(1), (2, cfg.T, cfg.D), jnp.float32)
    q, k, v = attention.qkv(x_BxTxD, jnp.arange(cfg.T))
    causal_TxT = jnp.tril(jnp.ones((cfg.T, cfg.T), jnp.bool_))
    ours = attention.attend(q, k, v, causal_TxT, None)
    fused = attention.fused(q, k, v, "xla")
    np.testing.assert_allclose(fused, ours, rtol=1e-5, atol=1e-6)


def test_cudnn_attention_refuses_dropout():
    with pytest.raises(ValueError, match="cudnn has no attention dropout"):
        BASE.replace(attention="cudnn", dropout=0.1)
