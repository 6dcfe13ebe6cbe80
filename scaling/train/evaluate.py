"""Validation loss, and the placement of host batches as global arrays (one slice per process)."""

from __future__ import annotations

import jax
from flax import nnx

from scaling.data import TokenDataset, eval_batches
from scaling.model.sharding import batch_sharding, global_array, replicated
from scaling.train.loss import cross_entropy_sum
from scaling.train.run_config import RunConfig
from scaling.train.state import StateLayout


def make_eval_step(layout: StateLayout, mesh):
    def eval_fn(params, tokens_BxT1):
        model = nnx.merge(layout.graphdef, params)
        return cross_entropy_sum(model(tokens_BxT1[:, :-1]), tokens_BxT1[:, 1:])

    rep = replicated(mesh)
    return jax.jit(
        eval_fn, in_shardings=(layout.param_shardings, batch_sharding(mesh)), out_shardings=(rep, rep)
    )


def evaluate(cfg: RunConfig, dataset: TokenDataset, eval_step, params, mesh) -> float:
    """Token-mean validation loss over the first `eval_batches` windows of the validation split."""
    B, T = cfg.train.batch_size, cfg.model.T
    total, count = 0.0, 0.0
    batches = eval_batches(
        dataset.val,
        batch=B,
        seq_len=T,
        max_batches=cfg.train.eval_batches,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    for local in batches:
        loss_sum, n = eval_step(params, global_array(local, batch_sharding(mesh), (B, T + 1)))
        total += float(loss_sum)
        count += float(n)
    return total / count
