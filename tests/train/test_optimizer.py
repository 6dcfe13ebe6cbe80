"""The host-side learning rates against closed forms, and AdamW with the rate as an argument against
optax.adamw with the schedule inside."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scaling.train.optimizer import OptimConfig, decay_mask, learning_rates, make_optimizer, make_schedule


def _closed_form(cfg: OptimConfig, total: int) -> np.ndarray:
    peak, floor, warmup = cfg.lr, cfg.lr * cfg.min_lr_ratio, cfg.warmup_steps
    rates = []
    for i in range(total):
        if i < warmup:
            rates.append(peak * (i + 1) / warmup)
        elif cfg.schedule == "cosine":
            progress = (i - warmup) / (total - warmup)
            rates.append(floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
        else:  # wsd
            decay = cfg.decay_steps or round(cfg.decay_fraction * total)
            into_decay = i - (total - decay)
            if into_decay < 0:
                rates.append(peak)
                continue
            down = into_decay / decay if cfg.decay_shape == "linear" else math.sqrt(into_decay / decay)
            rates.append(peak + (floor - peak) * down)
    return np.asarray(rates)


@pytest.mark.parametrize(
    ("schedule", "decay"),
    [
        ("cosine", {}),
        ("wsd", {}),
        ("wsd", {"decay_steps": 7}),
        ("wsd", {"decay_steps": 9, "decay_shape": "1-sqrt"}),
    ],
)
def test_learning_rates_follow_the_closed_form(schedule, decay):
    cfg = OptimConfig(
        lr=2e-3, schedule=schedule, warmup_steps=5, min_lr_ratio=0.1, decay_fraction=0.25, **decay
    )
    rates = learning_rates(cfg, 40)
    assert rates.dtype == np.float32 and rates.shape == (40,)
    np.testing.assert_allclose(rates, _closed_form(cfg, 40), rtol=1e-6)
    np.testing.assert_array_equal(
        learning_rates(OptimConfig(schedule="constant", warmup_steps=0), 7), np.float32(3e-3)
    )


def test_adamw_with_the_rate_as_argument_equals_optax_adamw():
    """Same clipping, Adam, decay mask and schedule: six steps agree with the schedule compiled in."""
    cfg = OptimConfig(lr=1e-2, warmup_steps=2, weight_decay=0.1, grad_clip=0.5)
    total = 6
    keys = jax.random.split(jax.random.key(0), 3)
    params = {"w": jax.random.normal(keys[0], (4, 3)), "b": jax.random.normal(keys[1], (3,))}
    reference_tx = optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adamw(
            make_schedule(cfg, total),
            b1=cfg.beta1,
            b2=cfg.beta2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=decay_mask,
        ),
    )
    tx, rates = make_optimizer(cfg), learning_rates(cfg, total)
    ours, reference = params, params
    ours_state, reference_state = tx.init(params), reference_tx.init(params)
    for i in range(total):
        step_key = jax.random.fold_in(keys[2], i)
        grads = {
            name: jax.random.normal(jax.random.fold_in(step_key, j), p.shape)
            for j, (name, p) in enumerate(params.items())
        }
        updates, ours_state = tx.update(grads, ours_state, ours, learning_rate=jnp.float32(rates[i]))
        ours = optax.apply_updates(ours, updates)
        updates, reference_state = reference_tx.update(grads, reference_state, reference)
        reference = optax.apply_updates(reference, updates)
    for name in params:
        assert not np.allclose(ours[name], params[name])
        np.testing.assert_allclose(ours[name], reference[name], rtol=1e-6, atol=1e-7)


def test_decay_mask_decays_the_weight_matrices_and_tables_and_nothing_else():
    """Every bias and LayerNorm scale is left alone, the [3, H, K] attention bias included."""
    from scaling.model.config import ModelConfig
    from scaling.train.state import abstract_params

    weights = ("qkv_kernel_Dx3xHxK", "out_kernel_HxKxD", "fc_kernel_DxF", "proj_kernel_FxD", "embedding")
    for scan, matrices in ((False, 2 * 4 + 2), (True, 4 + 2)):  # scanned: [L, D] scales and biases
        cfg = ModelConfig(V=17, T=8, D=8, L=2, H=2, pos_encoding="learned", scan_layers=scan)
        _, params = abstract_params(cfg)
        decayed = {
            jax.tree_util.keystr(path): bool(flag)
            for path, flag in jax.tree_util.tree_leaves_with_path(decay_mask(params))
        }
        for key, flag in decayed.items():
            assert flag == any(name in key for name in weights), key
        assert sum(decayed.values()) == matrices
