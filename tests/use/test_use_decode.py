"""The cached decode path against the full forward pass, position by position."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling.model.config import ModelConfig
from scaling.model.decode import empty_cache, forward_cached
from tests.use.helpers import random_params


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal", "rope"])
def test_cached_logits_equal_full_forward_at_every_step(pos_encoding):
    cfg = ModelConfig(V=61, T=16, D=32, L=2, H=4, pos_encoding=pos_encoding, tie_embeddings=False)
    graphdef, params = random_params(cfg, seed=1)
    tokens_BxT = jax.random.randint(jax.random.key(2), (3, 14), 0, cfg.V)
    full_BxTxV = np.asarray(jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, tokens_BxT))

    @jax.jit
    def run(params, tokens_BxP, cache, start):
        return forward_cached(nnx.merge(graphdef, params), tokens_BxP, cache, start)

    prompt = 5
    cache = empty_cache(nnx.merge(graphdef, params), batch=3, size=14)
    logits_BxPxV, cache = run(params, tokens_BxT[:, :prompt], cache, 0)
    np.testing.assert_allclose(logits_BxPxV, full_BxTxV[:, :prompt], rtol=1e-5, atol=1e-5)
    for t in range(prompt, 14):
        logits_Bx1xV, cache = run(params, tokens_BxT[:, t : t + 1], cache, jnp.int32(t))
        np.testing.assert_allclose(logits_Bx1xV[:, 0], full_BxTxV[:, t], rtol=1e-5, atol=1e-5)


def test_cache_size_is_checked():
    graphdef, params = random_params(ModelConfig(V=17, T=8, D=16, L=1, H=2))
    with pytest.raises(ValueError, match="cache size"):
        empty_cache(nnx.merge(graphdef, params), batch=1, size=9)
