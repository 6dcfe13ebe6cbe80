"""The jitted training step: token-weighted gradient accumulation over micro-batches inside one step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scaling.model.sharding import BATCH, replicated
from scaling.train.loss import cross_entropy_sum
from scaling.train.state import StateLayout


def loss_sum(graphdef: Any, params: Any, tokens_BxT1: jax.Array, dropout_key: jax.Array | None):
    model = nnx.merge(graphdef, params)
    logits_BxTxV = model(tokens_BxT1[:, :-1], dropout_key)
    return cross_entropy_sum(logits_BxTxV, tokens_BxT1[:, 1:])


def microbatch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches arrive as [micro-batches, rows, T+1]; rows are split over the data axes."""
    return NamedSharding(mesh, P(None, BATCH, None))


def make_train_step(
    layout: StateLayout, tx: optax.GradientTransformation, mesh: Mesh, dropout: bool = False
) -> Callable:
    """`step(params, opt_state, tokens_MxBxT1, step, lr) -> (params, opt_state, metrics)`.

    `lr` is this step's learning rate (see `optimizer.learning_rates`); optimizers that take no rate ignore
    it. Params and optimizer state are donated; metrics come back replicated: loss (token mean over the whole
    global batch), grad_norm (before clipping), update_norm and tokens.
    """
    tx = optax.with_extra_args_support(tx)

    def step_fn(params, opt_state, tokens_MxBxT1, step, lr):
        def accumulate(carry, inputs):
            grads_acc, loss_acc, count_acc = carry
            tokens_BxT1, index = inputs
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), step), index) if dropout else None
            grad_fn = jax.value_and_grad(
                lambda p: loss_sum(layout.graphdef, p, tokens_BxT1, key), has_aux=True
            )
            (total, count), grads = grad_fn(params)
            return (jax.tree.map(jnp.add, grads_acc, grads), loss_acc + total, count_acc + count), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        num_micro = tokens_MxBxT1.shape[0]
        init = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        (grads, total, count), _ = jax.lax.scan(accumulate, init, (tokens_MxBxT1, jnp.arange(num_micro)))
        grads = jax.tree.map(lambda g: g / count, grads)
        updates, opt_state = tx.update(grads, opt_state, params, learning_rate=lr)
        params = optax.apply_updates(params, updates)
        metrics = {
            "loss": total / count,
            "grad_norm": optax.tree.norm(grads),
            "update_norm": optax.tree.norm(updates),
            "tokens": count,
        }
        return params, opt_state, metrics

    rep = replicated(mesh)
    return jax.jit(
        step_fn,
        in_shardings=(layout.param_shardings, layout.opt_shardings, microbatch_sharding(mesh), rep, rep),
        out_shardings=(layout.param_shardings, layout.opt_shardings, rep),
        donate_argnums=(0, 1),
    )
