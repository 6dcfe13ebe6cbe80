"""Key/value-cached forward pass of `scaling.model.decoder.GPT`, reusing its modules: the attention's
projections and softmax attention, the MLP, norms and unembedding.

The cache holds every layer's keys and values for S slots. One function, `forward_cached`, runs P new
positions starting at position `start`: with the empty cache and the prompt it is the prefill; with one
token it is a decode step that costs one position instead of a re-run of the prefix. Queries attend to
the slots at or before their own position; unwritten slots are masked, so the logits equal the full
forward pass's (the parity test checks every step, for every position encoding).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from scaling.model.decoder import GPT, Block, run_blocks, sinusoidal_table


class KVCache(NamedTuple):
    """Keys and values of all layers, [L, B, S, H, K], in the model's compute dtype."""

    k_LxBxSxHxK: jax.Array
    v_LxBxSxHxK: jax.Array

    @property
    def size(self) -> int:
        return self.k_LxBxSxHxK.shape[2]


def empty_cache(model: GPT, batch: int, size: int) -> KVCache:
    cfg = model.cfg
    if not 1 <= size <= cfg.T:
        raise ValueError(f"cache size must be in [1, T={cfg.T}], got {size}")
    shape = (cfg.L, batch, size, cfg.H, cfg.head_dim)
    dtype = jnp.dtype(cfg.compute_dtype)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def _embed(model: GPT, tokens_BxP: jax.Array, start: jax.Array) -> jax.Array:
    cfg = model.cfg
    x_BxPxD = jnp.take(model.wte.table, tokens_BxP, axis=0)
    P = tokens_BxP.shape[1]
    if cfg.pos_encoding == "learned":
        x_BxPxD = x_BxPxD + jax.lax.dynamic_slice_in_dim(model.wpe.table, start, P)[None]
    elif cfg.pos_encoding == "sinusoidal":
        x_BxPxD = x_BxPxD + jax.lax.dynamic_slice_in_dim(sinusoidal_table(cfg.T, cfg.D), start, P)[None]
    return x_BxPxD.astype(jnp.dtype(cfg.compute_dtype))


def _attend(
    block: Block,
    x_BxPxD: jax.Array,
    positions_P: jax.Array,
    start: jax.Array,
    cache: KVCache,
    layer: jax.Array,
) -> tuple[jax.Array, KVCache]:
    """The block's attention for P new positions, through the model's own projections and attention;
    returns its output and the cache with the new keys and values written.

    The write is a dynamic update of the stacked [L, ...] arrays at `layer`, which XLA does in place in a
    loop carry (the scan over a scanned model's layers carries the cache too).
    """
    q_BxPxHxK, k_BxPxHxK, v_BxPxHxK = block.attn.qkv(x_BxPxD, positions_P)
    at = (layer, 0, start, 0, 0)
    cache = KVCache(
        jax.lax.dynamic_update_slice(cache.k_LxBxSxHxK, k_BxPxHxK[None].astype(cache.k_LxBxSxHxK.dtype), at),
        jax.lax.dynamic_update_slice(cache.v_LxBxSxHxK, v_BxPxHxK[None].astype(cache.v_LxBxSxHxK.dtype), at),
    )
    k_BxSxHxK, v_BxSxHxK = cache.k_LxBxSxHxK[layer], cache.v_LxBxSxHxK[layer]
    visible_PxS = jnp.arange(k_BxSxHxK.shape[1])[None, :] <= positions_P[:, None]
    out_BxPxHxK = block.attn.attend(q_BxPxHxK, k_BxSxHxK, v_BxSxHxK, visible_PxS, None)
    return block.attn.out(out_BxPxHxK), cache


def forward_cached(
    model: GPT, tokens_BxP: jax.Array, cache: KVCache, start: jax.Array | int
) -> tuple[jax.Array, KVCache]:
    """Float32 logits [B, P, V] of P new tokens at positions start..start+P-1, and the updated cache.

    The caller keeps start + P <= cache.size (inside jit an overflowing write would be clamped silently).
    """
    start = jnp.asarray(start, jnp.int32)
    positions_P = start + jnp.arange(tokens_BxP.shape[1], dtype=jnp.int32)

    def layer_step(block: Block, carry: tuple[jax.Array, KVCache], layer: jax.Array):
        x_BxPxD, cache = carry
        y_BxPxD, cache = _attend(block, block.ln1(x_BxPxD), positions_P, start, cache, layer)
        x_BxPxD = x_BxPxD + y_BxPxD
        return x_BxPxD + block.mlp(block.ln2(x_BxPxD)), cache

    carry = (_embed(model, tokens_BxP, start), cache)
    x_BxPxD, cache = run_blocks(model.blocks, layer_step, carry, jnp.arange(model.cfg.L))
    return model.logits(model.ln_f(x_BxPxD)), cache
