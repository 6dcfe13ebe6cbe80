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


# The widest tensor of one evaluation call, in floats (4 MiB): a small model's batches are joined up to it.
EVAL_CALL_FLOATS = 1 << 20


def max_eval_group(cfg: RunConfig) -> int:
    """How many training batches one evaluation call may take: its widest tensor (logits, attention
    scores or MLP activations) stays within `EVAL_CALL_FLOATS`, and never below one batch."""
    m = cfg.model
    widest_per_window = m.T * max(m.V, m.H * m.T, m.F)
    return max(1, EVAL_CALL_FLOATS // (cfg.train.batch_size * widest_per_window))


def evaluate(cfg: RunConfig, dataset: TokenDataset, eval_step, params, mesh) -> float:
    """Token-mean validation loss over the first `eval_batches` batches of validation windows, several
    batches per call where they are small (the same windows; the sum is reassociated in float32)."""
    total, count = 0.0, 0.0
    batches = eval_batches(
        dataset.val,
        batch=cfg.train.batch_size,
        seq_len=cfg.model.T,
        max_batches=cfg.train.eval_batches,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        max_group=max_eval_group(cfg),
    )
    for local in batches:
        global_shape = (local.shape[0] * jax.process_count(), local.shape[1])
        loss_sum, n = eval_step(params, global_array(local, batch_sharding(mesh), global_shape))
        total += float(loss_sum)
        count += float(n)
    return total / count
