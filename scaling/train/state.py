"""Model parameters and optimizer state as plain pytrees, created already sharded on the mesh.

Keeping the training state as (graphdef, params, opt_state) instead of live NNX objects lets one
`jax.jit` signature state every input and output sharding, and lets orbax save and restore the exact
arrays, onto any mesh, through the abstract state built here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scaling.model.config import ModelConfig
from scaling.model.decoder import GPT
from scaling.model.sharding import PARAM_SPECS, param_key, state_shardings


@dataclass(frozen=True)
class StateLayout:
    """The static half of the training state: the model graph and every leaf's sharding."""

    graphdef: Any
    param_shardings: Any
    opt_shardings: Any
    abstract_params: Any
    abstract_opt_state: Any


def with_shardings(tree: Any, shardings: Any) -> Any:
    """Abstract leaves placed by `shardings`: what orbax restores onto, whatever mesh saved them."""
    return jax.tree.map(
        lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s), tree, shardings
    )


def abstract_params(cfg: ModelConfig) -> tuple[Any, Any]:
    graphdef, params = nnx.split(nnx.eval_shape(lambda: GPT(cfg, nnx.Rngs(0))), nnx.Param)
    return graphdef, params


def _opt_leaf_spec(path: tuple[Any, ...], leaf: Any) -> P:
    """Optimizer moments mirror a parameter's path suffix and take its spec; counters are replicated."""
    parts = param_key(path).split("/")
    for start in range(len(parts)):
        spec = PARAM_SPECS.get("/".join(parts[start:]))
        if spec is not None and len(leaf.shape) == len(spec):
            return spec
    return P()


def make_layout(cfg: ModelConfig, tx: optax.GradientTransformation, mesh: Mesh) -> StateLayout:
    """Resolve every leaf's sharding before anything is allocated; fails on an indivisible shape."""
    graphdef, params = abstract_params(cfg)
    param_sh = state_shardings(params, mesh)
    opt_state = jax.eval_shape(tx.init, params)
    opt_sh = jax.tree_util.tree_map_with_path(
        lambda path, leaf: NamedSharding(mesh, _opt_leaf_spec(path, leaf)), opt_state
    )
    return StateLayout(
        graphdef, param_sh, opt_sh, with_shardings(params, param_sh), with_shardings(opt_state, opt_sh)
    )


def init_state(
    cfg: ModelConfig, tx: optax.GradientTransformation, layout: StateLayout, seed: int
) -> tuple[Any, Any]:
    """Parameters and optimizer state born sharded: jit's out_shardings place each shard on its device."""
    return make_initializer(cfg, tx, layout)(seed)


def make_initializer(
    cfg: ModelConfig, tx: optax.GradientTransformation, layout: StateLayout
) -> Callable[[int], tuple[Any, Any]]:
    """`init(seed)` as `init_state`, compiled once for every seed: the seed's key enters as an argument,
    not a constant, so a population's members (and the compilation cache) share one program."""

    def init(key_data: jax.Array) -> tuple[Any, Any]:
        _, params = nnx.split(GPT(cfg, nnx.Rngs(jax.random.wrap_key_data(key_data))), nnx.Param)
        return params, tx.init(params)

    jitted = jax.jit(init, out_shardings=(layout.param_shardings, layout.opt_shardings))
    return lambda seed: jitted(np.asarray(jax.random.key_data(jax.random.key(seed))))
