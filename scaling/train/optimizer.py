"""AdamW with decoupled weight decay on matrices only, and the learning-rate schedules sweeps choose from.

The schedule is evaluated on the host and the rate enters each step as an argument, so the compiled step does
not depend on the run's length: sweep runs of one shape and batch at different budgets share one compilation
(and the persistent compilation cache serves every run after the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

Schedule = Literal["cosine", "wsd", "constant"]
DecayShape = Literal["linear", "1-sqrt"]


@dataclass(frozen=True)
class OptimConfig:
    """`lr` is the peak rate; `min_lr_ratio` the floor as a fraction of it.

    cosine: linear warmup, then cosine decay to the floor at the last step.
    wsd: warmup, stable at the peak, then decay to the floor over the last `decay_steps` steps (0: the last
    `decay_fraction` of them), linear or 1-sqrt (Hägele et al. 2024: 1 - sqrt(t / decay) of the way down).
    A cooldown branch of a longer wsd run is this schedule with its `decay_steps`: the same rates as the long
    run up to the branch point, so the branch equals the run trained alone.
    """

    lr: float = 3e-3
    schedule: Schedule = "cosine"
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2
    decay_steps: int = 0
    decay_shape: DecayShape = "linear"
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # global-norm clip; 0 disables

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"optim.decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.decay_steps < 0:
            raise ValueError(
                f"optim.decay_steps must be >= 0 (0: use decay_fraction), got {self.decay_steps}"
            )
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("optim.weight_decay and optim.grad_clip must be >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("optim.beta1 and optim.beta2 must be in [0, 1)")


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "constant":
        rest = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "cosine":
        rest = optax.cosine_decay_schedule(cfg.lr, max(total_steps - warmup, 1), alpha=cfg.min_lr_ratio)
    else:
        decay_steps = wsd_decay_steps(cfg, total_steps)
        stable_steps = max(total_steps - warmup - decay_steps, 0)
        rest = optax.join_schedules(
            [optax.constant_schedule(cfg.lr), _decay(cfg, floor, decay_steps)], [stable_steps]
        )
    if warmup == 0:
        return rest
    return optax.join_schedules([optax.linear_schedule(cfg.lr / warmup, cfg.lr, warmup - 1), rest], [warmup])


def wsd_decay_steps(cfg: OptimConfig, total_steps: int) -> int:
    """Steps of a wsd run's final decay: `decay_steps` when set, else `decay_fraction` of the run."""
    steps = cfg.decay_steps or round(cfg.decay_fraction * total_steps)
    return min(max(steps, 1), total_steps)


def _decay(cfg: OptimConfig, floor: float, steps: int) -> optax.Schedule:
    if cfg.decay_shape == "linear":
        return optax.linear_schedule(cfg.lr, floor, steps)

    def one_minus_sqrt(count):
        done = jnp.clip(count / steps, 0.0, 1.0)
        return floor + (cfg.lr - floor) * (1.0 - jnp.sqrt(done))

    return one_minus_sqrt


def decay_mask(params) -> object:
    """Weight decay on weight matrices and embedding tables only: never on a 1-D leaf, nor on a bias or a
    LayerNorm scale of any shape (the attention bias is [3, H, K])."""
    return jax.tree_util.tree_map_with_path(lambda path, p: jnp.ndim(p) >= 2 and _is_weight(path), params)


def _is_weight(path: tuple) -> bool:
    names = [str(getattr(part, "key", getattr(part, "name", ""))) for part in path]
    leaf = next((name for name in reversed(names) if name and name != "value"), "")
    return "bias" not in leaf and "scale" not in leaf


def learning_rates(cfg: OptimConfig, total_steps: int) -> np.ndarray:
    """float32 rate of every step: entry i is what update i (0-based) is scaled by."""
    schedule = jax.jit(jax.vmap(make_schedule(cfg, total_steps)))
    return np.asarray(schedule(jnp.arange(total_steps)), np.float32)


def scale_by_learning_rate_arg() -> optax.GradientTransformationExtraArgs:
    """Scale updates by -learning_rate, the rate given to `update` as the keyword `learning_rate`."""

    def update(updates, state, params=None, *, learning_rate, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda u: (-learning_rate * u).astype(u.dtype), updates), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformationExtraArgs:
    """AdamW as optax.adamw composes it (Adam, decoupled decay, then the rate), with the rate an argument:
    `tx.update(grads, opt_state, params, learning_rate=lr)`."""
    parts = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
    parts += [
        optax.scale_by_adam(b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps),
        optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask),
        scale_by_learning_rate_arg(),
    ]
    return optax.chain(*parts)
