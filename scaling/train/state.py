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
from scaling.model.layers import Layers, layers_of, relayout
from scaling.model.sharding import param_key, state_shardings, table_spec


@dataclass(frozen=True)
class StateLayout:
    """The static half of the training state: the model graph and every leaf's sharding, and what they
    were made from (so the same state can be laid out with the other block layout)."""

    graphdef: Any
    param_shardings: Any
    opt_shardings: Any
    abstract_params: Any
    abstract_opt_state: Any
    model: ModelConfig
    tx: optax.GradientTransformation
    mesh: Mesh

    def with_layers(self, layers: Layers) -> StateLayout:
        """This state with the blocks scanned or unrolled (as a checkpoint may hold them)."""
        if layers == layers_of(self.abstract_params):
            return self
        return make_layout(self.model.replace(scan_layers=layers == "scanned"), self.tx, self.mesh)


def with_shardings(tree: Any, shardings: Any) -> Any:
    """Abstract leaves placed by `shardings`: what orbax restores onto, whatever mesh saved them."""
    return jax.tree.map(
        lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s), tree, shardings
    )


def abstract_params(cfg: ModelConfig) -> tuple[Any, Any]:
    graphdef, params = nnx.split(nnx.eval_shape(lambda: GPT(cfg, nnx.Rngs(0))), nnx.Param)
    return graphdef, params


def placed_params(cfg: ModelConfig, mesh: Mesh) -> tuple[Any, Any]:
    """(graphdef, abstract parameters placed by the sharding table on `mesh`)."""
    graphdef, shapes = abstract_params(cfg)
    return graphdef, with_shardings(shapes, state_shardings(shapes, mesh))


def relaid(tree: Any, target: Any) -> Any:
    """`tree` (parameters, or any tree of the model's state) in the block layout of `target`, an abstract
    tree whose leaves carry their shardings; `tree` itself when the layouts already agree."""
    if layers_of(tree) == layers_of(target):
        return tree
    shardings = jax.tree.map(lambda leaf: leaf.sharding, target)
    return jax.jit(lambda t: relayout(t, target), out_shardings=shardings)(tree)


def _opt_leaf_spec(path: tuple[Any, ...], leaf: Any) -> P:
    """Optimizer moments mirror a parameter's path suffix and take its spec; counters are replicated."""
    parts = param_key(path).split("/")
    for start in range(len(parts)):
        spec = table_spec("/".join(parts[start:]))
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
        graphdef,
        param_sh,
        opt_sh,
        with_shardings(params, param_sh),
        with_shardings(opt_state, opt_sh),
        cfg,
        tx,
        mesh,
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
