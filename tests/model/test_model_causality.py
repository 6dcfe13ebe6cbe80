"""Causality and initial loss: properties any correct decoder has, checked through the public API."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling.model.config import ModelConfig
from scaling.model.decoder import GPT
from scaling.train.loss import cross_entropy_sum

ENCODINGS = ["learned", "sinusoidal", "rope"]


@nnx.jit
def forward(model: GPT, tokens_BxT: jax.Array) -> jax.Array:
    return model(tokens_BxT)


@pytest.mark.parametrize("pos_encoding", ENCODINGS)
def test_future_tokens_do_not_change_past_logits(pos_encoding: str) -> None:
    """Row t of the batch changes every token after position t; logits up to t must not move."""
    cfg = ModelConfig(V=61, T=12, D=32, L=2, H=4, pos_encoding=pos_encoding)
    model = GPT(cfg, nnx.Rngs(0))
    rng = np.random.default_rng(0)
    base_T = rng.integers(0, cfg.V, cfg.T)
    changed_TxT = np.tile(base_T, (cfg.T, 1))
    for t in range(cfg.T):
        changed_TxT[t, t + 1 :] = (base_T[t + 1 :] + rng.integers(1, cfg.V, cfg.T - t - 1)) % cfg.V
    base_logits_TxV = np.asarray(forward(model, jnp.asarray(base_T[None])))[0]
    changed_logits_TxTxV = np.asarray(forward(model, jnp.asarray(changed_TxT)))
    for t in range(cfg.T):
        past = changed_logits_TxTxV[t, : t + 1]
        np.testing.assert_allclose(past, base_logits_TxV[: t + 1], rtol=0, atol=1e-6, err_msg=f"t={t}")
        if t + 1 < cfg.T:  # not vacuous: the changed positions do see the change
            assert np.abs(changed_logits_TxTxV[t, t + 1 :] - base_logits_TxV[t + 1 :]).max() > 1e-4


@pytest.mark.parametrize("pos_encoding", ENCODINGS)
def test_logits_at_t_have_no_gradient_from_later_inputs(pos_encoding: str) -> None:
    """Token id == position, so row p of the (untied) embedding's gradient is position p's input gradient."""
    cfg = ModelConfig(V=16, T=16, D=32, L=2, H=4, pos_encoding=pos_encoding, tie_embeddings=False)
    model = GPT(cfg, nnx.Rngs(1))
    tokens_1xT = jnp.arange(cfg.T)[None]
    t = 5

    @nnx.jit
    def input_grads(m: GPT) -> jax.Array:
        grads = nnx.grad(lambda m: jnp.square(m(tokens_1xT)[0, t]).sum())(m)
        return grads.wte.embedding_VxD[...]

    row_norms_T = np.linalg.norm(np.asarray(input_grads(model)), axis=-1)
    assert np.all(row_norms_T[t + 1 :] == 0.0)
    assert np.all(row_norms_T[: t + 1] > 0.0)


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_initial_loss_is_log_vocabulary(pos_encoding: str) -> None:
    cfg = ModelConfig(V=2048, T=32, D=64, L=2, H=2, pos_encoding=pos_encoding)
    model = GPT(cfg, nnx.Rngs(0))
    tokens_BxT1 = jax.random.randint(jax.random.key(3), (8, cfg.T + 1), 0, cfg.V)
    total, count = cross_entropy_sum(forward(model, tokens_BxT1[:, :-1]), tokens_BxT1[:, 1:])
    assert abs(float(total / count) - math.log(cfg.V)) < 0.1
