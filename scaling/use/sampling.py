"""Decoding strategies as pure functions of the next-token logits [B, V] and a PRNG key.

Order of the transforms follows common practice: temperature first, then top-k, then top-p on the
tempered distribution, then one categorical draw. Temperature 0 is greedy (argmax), so that setting never
divides by zero and gives exactly the greedy token.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

_NEG_INF = -jnp.inf


@dataclass(frozen=True)
class SamplingConfig:
    """temperature 0 = greedy; top_k 0 = no cut; top_p 1 = no nucleus cut."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def greedy(logits_BxV: jax.Array) -> jax.Array:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)


def top_k_mask(logits_BxV: jax.Array, k: int) -> jax.Array:
    """True on exactly k tokens per row: the k largest, ties broken towards the lower id (as argmax)."""
    _, ids_BxK = jax.lax.top_k(logits_BxV, k)
    rows_Bx1 = jnp.arange(logits_BxV.shape[0])[:, None]
    return jnp.zeros(logits_BxV.shape, jnp.bool_).at[rows_Bx1, ids_BxK].set(True)


def top_p_mask(logits_BxV: jax.Array, p: float) -> jax.Array:
    """True on the nucleus: the most probable tokens, in order, until their mass first reaches p.

    A token is in when the mass of the tokens ranked before it is still below p, so the top token is
    always in and the nucleus is the smallest such prefix.
    """
    order_BxV = jnp.argsort(-logits_BxV, axis=-1, stable=True)
    probs_BxV = jax.nn.softmax(jnp.take_along_axis(logits_BxV, order_BxV, axis=-1), axis=-1)
    mass_before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
    keep_sorted_BxV = mass_before_BxV < p
    rows_Bx1 = jnp.arange(logits_BxV.shape[0])[:, None]
    return jnp.zeros(logits_BxV.shape, jnp.bool_).at[rows_Bx1, order_BxV].set(keep_sorted_BxV)


def filtered_logits(logits_BxV: jax.Array, cfg: SamplingConfig) -> jax.Array:
    """Tempered logits with every token outside the top-k and the nucleus set to -inf (float32)."""
    logits_BxV = logits_BxV.astype(jnp.float32) / cfg.temperature
    if cfg.top_k and cfg.top_k < logits_BxV.shape[-1]:
        logits_BxV = jnp.where(top_k_mask(logits_BxV, cfg.top_k), logits_BxV, _NEG_INF)
    if cfg.top_p < 1:
        logits_BxV = jnp.where(top_p_mask(logits_BxV, cfg.top_p), logits_BxV, _NEG_INF)
    return logits_BxV


def sample(key: jax.Array, logits_BxV: jax.Array, cfg: SamplingConfig) -> jax.Array:
    """Next token ids [B] (int32); one independent draw per row."""
    if cfg.greedy:
        return greedy(logits_BxV)
    return jax.random.categorical(key, filtered_logits(logits_BxV, cfg), axis=-1).astype(jnp.int32)
