"""ModelConfig's parameter and FLOP counts against independent counts taken from the real model."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling.model.config import ModelConfig
from scaling.model.decoder import GPT
from scaling.model.sharding import param_key
from scaling.model.traced_matmuls import matmuls_of, total_flops
from scaling.train.loss import cross_entropy_sum

SHAPES = [
    ModelConfig(V=97, T=16, D=32, L=1, H=2),
    ModelConfig(V=97, T=16, D=32, L=2, H=4, tie_embeddings=False),
    ModelConfig(V=256, T=24, D=48, L=3, H=3, F=100, pos_encoding="sinusoidal"),
    ModelConfig(V=256, T=24, D=48, L=3, H=3, pos_encoding="rope", tie_embeddings=False),
    ModelConfig(V=500, T=64, D=64, L=2, H=4, pos_encoding="rope"),
]
EMBEDDING_TABLES = {"wte/embedding_VxD", "wpe/embedding_TxD", "unembed/kernel_DxV"}


def _param_sizes(cfg: ModelConfig) -> dict[str, int]:
    params = nnx.state(nnx.eval_shape(lambda: GPT(cfg, nnx.Rngs(0))), nnx.Param)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    name = lambda path: jax.tree_util.keystr(path, simple=True, separator="/").removesuffix("/value")  # noqa: E731
    return {name(path): math.prod(x.shape) for path, x in leaves}


@pytest.mark.parametrize("cfg", SHAPES, ids=lambda c: f"D{c.D}L{c.L}{c.pos_encoding}tie{c.tie_embeddings}")
def test_param_counts_equal_array_sizes(cfg: ModelConfig) -> None:
    sizes = _param_sizes(cfg)
    embedding = sum(n for name, n in sizes.items() if name in EMBEDDING_TABLES)
    assert sum(sizes.values()) == cfg.params
    assert embedding == cfg.params_embedding
    assert sum(sizes.values()) - embedding == cfg.params_nonembedding


@pytest.mark.parametrize("cfg", SHAPES, ids=lambda c: f"D{c.D}L{c.L}{c.pos_encoding}tie{c.tie_embeddings}")
def test_shape_table_is_the_models_own(cfg: ModelConfig) -> None:
    """`param_shapes()` (what the planner checks against the mesh) names every tensor the decoder makes,
    with its shape, and nothing else."""
    params = nnx.state(nnx.eval_shape(lambda: GPT(cfg, nnx.Rngs(0))), nnx.Param)
    made = {}
    for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
        made.setdefault(param_key(path), set()).add(tuple(x.shape))
    assert made == {name: {shape} for name, shape in cfg.param_shapes().items()}


@pytest.mark.parametrize("cfg", SHAPES, ids=lambda c: f"D{c.D}L{c.L}{c.pos_encoding}tie{c.tie_embeddings}")
def test_flops_per_token_match_the_traced_matmuls(cfg: ModelConfig) -> None:
    """Forward: the matmuls in the traced forward pass; training: those of value_and_grad of the loss."""
    B = 2
    graphdef, params = nnx.split(nnx.eval_shape(lambda: GPT(cfg, nnx.Rngs(0))))
    tokens_BxT1 = jnp.zeros((B, cfg.T + 1), jnp.int32)

    def logits(p):
        return nnx.merge(graphdef, p)(tokens_BxT1[:, :-1])

    def loss(p):
        return cross_entropy_sum(logits(p), tokens_BxT1[:, 1:])[0]

    tokens = B * cfg.T
    forward = total_flops(matmuls_of(logits, params)) / tokens
    training = total_flops(matmuls_of(jax.value_and_grad(loss), params)) / tokens
    assert forward == pytest.approx(cfg.forward_flops_per_token, rel=0.02)
    assert training == pytest.approx(cfg.flops_per_token, rel=0.02)


def test_flops_per_token_against_a_float64_hand_count() -> None:
    """GPT-2 small's published shape, counted per matmul in float64 (Kaplan et al. 2020, table 1 layout)."""
    cfg = ModelConfig(V=50257, T=1024, D=768, L=12, H=12)
    D, F, T, V, L = (np.float64(x) for x in (cfg.D, cfg.F, cfg.T, cfg.V, cfg.L))
    per_layer = 2 * D * 3 * D + 2 * T * D + 2 * T * D + 2 * D * D + 2 * D * F + 2 * F * D
    forward = L * per_layer + 2 * D * V
    assert cfg.forward_flops_per_token == pytest.approx(forward, rel=1e-12)
    assert cfg.flops_per_token == pytest.approx(3 * forward, rel=1e-12)
    assert cfg.params == 124_439_808  # the well-known "124M" (tied, learned positions)
