"""Device mesh and the one sharding table: every parameter and every constrained activation by name.

Mesh axes:
- `data`: pure data parallelism; parameters are replicated over it, the batch is split over it.
- `fsdp`: the batch is split over it too, and parameters (and so optimizer state) are split along their
  model-width dimension D, gathered on use (ZeRO-3 style).
- `tensor`: tensor (model) parallelism; heads, MLP hidden units and the vocabulary are split over it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scaling.errors import UserError

log = logging.getLogger(__name__)

AXES = ("data", "fsdp", "tensor")
BATCH = ("data", "fsdp")

# Parameters by path (joined with "/", layer index as "*"). One entry per tensor, named by shape. A scanned
# model's stacked block tensors (`blocks/attn/...`, see `table_spec`) take their entry with the leading
# layer axis unsharded: each scan step reads one whole layer.
PARAM_SPECS: Mapping[str, P] = {
    "wte/embedding_VxD": P("tensor", "fsdp"),
    "wpe/embedding_TxD": P(None, "fsdp"),
    "unembed/kernel_DxV": P("fsdp", "tensor"),
    "blocks/*/ln1/scale_D": P(None),
    "blocks/*/ln1/bias_D": P(None),
    "blocks/*/ln2/scale_D": P(None),
    "blocks/*/ln2/bias_D": P(None),
    "blocks/*/attn/qkv_kernel_Dx3xHxK": P("fsdp", None, "tensor", None),
    "blocks/*/attn/qkv_bias_3xHxK": P(None, "tensor", None),
    "blocks/*/attn/out_kernel_HxKxD": P("tensor", None, "fsdp"),
    "blocks/*/attn/out_bias_D": P(None),
    "blocks/*/mlp/fc_kernel_DxF": P("fsdp", "tensor"),
    "blocks/*/mlp/fc_bias_F": P("tensor"),
    "blocks/*/mlp/proj_kernel_FxD": P("tensor", "fsdp"),
    "blocks/*/mlp/proj_bias_D": P(None),
    "ln_f/scale_D": P(None),
    "ln_f/bias_D": P(None),
}

# Activations constrained inside the model (applied only when a mesh is set).
ACTIVATION_SPECS: Mapping[str, P] = {
    "tokens_BxT": P(BATCH, None),
    "act_BxTxD": P(BATCH, None, None),
    "heads_BxTxHxK": P(BATCH, None, "tensor", None),
    "hidden_BxTxF": P(BATCH, None, "tensor"),
    "logits_BxTxV": P(BATCH, None, "tensor"),
}


@dataclass(frozen=True)
class MeshConfig:
    """Mesh axis sizes; exactly one may be -1, meaning "all the remaining devices"."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def __post_init__(self) -> None:
        sizes = (self.data, self.fsdp, self.tensor)
        if any(s == 0 or s < -1 for s in sizes):
            raise ValueError(f"mesh sizes must be positive or -1, got {sizes}")
        if sizes.count(-1) > 1:
            raise ValueError(f"at most one mesh axis may be -1 (the rest), got {sizes}")

    def resolve(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise UserError(
                    f"mesh {dict(zip(AXES, sizes, strict=True))}: {num_devices} devices are not divisible "
                    f"by the fixed axes' product {known}"
                )
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise UserError(
                f"mesh {dict(zip(AXES, sizes, strict=True))} needs {math.prod(sizes)} devices but "
                f"{num_devices} are present; use -1 on one axis to take the rest"
            )
        return sizes[0], sizes[1], sizes[2]


def make_mesh(cfg: MeshConfig, devices: list | None = None) -> Mesh:
    """Build the (data, fsdp, tensor) mesh with Auto axis types stated explicitly (see STYLE pitfalls)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = cfg.resolve(len(devices))
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def param_key(path: tuple[Any, ...]) -> str:
    """Table key of a parameter path: layer indices become `*`."""
    parts = []
    for part in path:
        if isinstance(part, jax.tree_util.GetAttrKey):
            continue  # a Variable's `.value`, not part of the parameter's name
        name = str(getattr(part, "key", getattr(part, "idx", part)))
        parts.append("*" if re.fullmatch(r"\d+", name) else name)
    return "/".join(parts)


def table_spec(key: str) -> P | None:
    """The table's spec for a parameter key, or None; a stacked block tensor `blocks/REST` is the table's
    `blocks/*/REST` with an unsharded layer axis in front."""
    if key in PARAM_SPECS:
        return PARAM_SPECS[key]
    head, _, rest = key.partition("/")
    layer = PARAM_SPECS.get(f"{head}/*/{rest}") if head == "blocks" else None
    return None if layer is None else P(None, *layer)


def param_spec(path: tuple[Any, ...]) -> P:
    key = param_key(path)
    spec = table_spec(key)
    if spec is None:
        raise KeyError(f"parameter {key!r} has no entry in the sharding table PARAM_SPECS")
    return spec


def spec_for_shape(path: tuple[Any, ...], shape: tuple[int, ...], mesh: Mesh) -> P:
    """The table's spec for this tensor, after checking the mesh divides every sharded dimension."""
    spec = param_spec(path)
    check_divisible(param_key(path), shape, spec, mesh)
    return spec


def check_divisible(name: str, shape: tuple[int, ...], spec: P, mesh: Mesh) -> None:
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)), strict=True):
        if axes is None:
            continue
        size = math.prod(mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,)))
        if dim % size:
            raise UserError(
                f"tensor {name} of shape {tuple(shape)} cannot be sharded as {spec} on mesh "
                f"{dict(mesh.shape)}: dimension {dim} is not divisible by {size}; change the model shape "
                f"or the mesh sizes"
            )


def state_shardings(abstract_state: Any, mesh: Mesh) -> Any:
    """NamedSharding per leaf of a model state pytree, from the table, validated against the mesh."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: NamedSharding(mesh, spec_for_shape(path, leaf.shape, mesh)), abstract_state
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, ACTIVATION_SPECS["tokens_BxT"])


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def microbatch_sharding(mesh: Mesh) -> NamedSharding:
    """Training batches arrive as [micro-batches, rows, T+1]; rows are split over the data axes."""
    return NamedSharding(mesh, P(None, BATCH, None))


def global_array(local: np.ndarray, sharding: NamedSharding, global_shape: tuple[int, ...]) -> jax.Array:
    """One global array from each process's rows (every process passes its own slice)."""
    return jax.make_array_from_process_local_data(sharding, local, global_shape)


def check_batch_divisible(global_batch: int, mesh: Mesh) -> None:
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    if global_batch % ways:
        raise UserError(
            f"global batch {global_batch} is not divisible by the data x fsdp mesh size {ways}; "
            f"choose a batch that is a multiple of {ways}"
        )


def constrain(x: jax.Array, name: str) -> jax.Array:
    """Apply the table's activation spec when running under `jax.set_mesh`; a no-op otherwise."""
    if jax.sharding.get_abstract_mesh().empty:
        return x
    return jax.lax.with_sharding_constraint(x, ACTIVATION_SPECS[name])


def log_shardings(state: Any) -> list[str]:
    """One line per parameter with its shape and resolved sharding; logged at start-up."""
    lines = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        sharding = getattr(leaf, "sharding", None)
        spec = getattr(sharding, "spec", None)
        lines.append(f"{param_key(path):40s} {tuple(np.shape(leaf))!s:22s} {spec}")
    for line in lines:
        log.info("sharding %s", line)
    return lines
