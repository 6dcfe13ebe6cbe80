"""Validation loss: several batches per call give the loss of the same windows, checked in float64."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from scaling.config_io import from_dict
from scaling.data import load_dataset
from scaling.model.sharding import make_mesh
from scaling.train.evaluate import evaluate, make_eval_step, max_eval_group
from scaling.train.optimizer import make_optimizer
from scaling.train.run_config import RunConfig
from scaling.train.state import init_state, make_layout
from tests.helpers import tiny_run_config


def _float64_loss(logits_fn, params, val: np.ndarray, windows: int, T: int) -> float:
    """Mean next-token loss of the first `windows` validation windows, log-softmax in float64."""
    nll = []
    for w in range(windows):
        window = val[w * T : w * T + T + 1]
        logits = np.asarray(logits_fn(params, window[None, :-1]), np.float64)[0]
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        nll.append(log_z - logits[np.arange(T), window[1:]])
    return float(np.mean(np.concatenate(nll)))


def test_grouped_evaluation_is_the_loss_of_the_same_windows(data_cache):
    cfg = from_dict(RunConfig, tiny_run_config(data_cache, train={"batch_size": 4, "eval_batches": 6}))
    assert max_eval_group(cfg) >= 6  # the six batches go in one call
    dataset = load_dataset(cfg.data, progress=False)
    mesh = make_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim)
    layout = make_layout(cfg.model, tx, mesh)
    params, _ = init_state(cfg.model, tx, layout, seed=0)
    with jax.set_mesh(mesh):
        loss = evaluate(cfg, dataset, make_eval_step(layout, mesh), params, mesh)
        logits_fn = jax.jit(lambda p, x: nnx.merge(layout.graphdef, p)(x))
        reference = _float64_loss(logits_fn, params, np.asarray(dataset.val), 6 * 4, cfg.model.T)
    assert abs(loss - reference) < 1e-6 * reference, (loss, reference)
