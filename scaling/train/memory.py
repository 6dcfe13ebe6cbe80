"""Out of memory as a one-line error: a run that cannot fit is refused before anything is allocated or
compiled (so no allocator aborts the process under `ulimit -v`): first its parameters and AdamW state,
then the whole step (`memory_estimate`: gradients and activations too). An XLA RESOURCE_EXHAUSTED or a
MemoryError that still comes later is named with the model's size and what to change."""

from __future__ import annotations

import logging
import math
import resource
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from scaling.errors import UserError
from scaling.model.sharding import microbatch_sharding, replicated
from scaling.train.memory_estimate import (
    MemoryEstimate,
    compiled_estimate,
    human_bytes,
    run_formula,
)
from scaling.train.memory_fit import what_would_fit
from scaling.train.run_config import RunConfig
from scaling.train.state import StateLayout
from scaling.train.step import make_flat_train_step

log = logging.getLogger(__name__)

# The formula is within this factor of the compiled analysis at the shapes tested; a run whose formula
# lies within it of the limit is compiled (on the abstract state) to decide.
FORMULA_FACTOR = 2.0

_ADVICE = "choose a smaller model (model.D, model.L) or shard it over more devices (mesh.fsdp)"


@dataclass(frozen=True)
class MemoryLimit:
    """What there is: `bytes` shared by `devices` devices (one accelerator's own memory, or the host's
    for all the CPU devices of this process), `where` saying which."""

    bytes: int
    devices: int
    where: str


def memory_limit() -> MemoryLimit | None:
    """Each accelerator's limit, or the host's for the CPU devices, which share it; None where unknown."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return MemoryLimit(int(stats["bytes_limit"]), 1, f"per {device.platform} device")
    available = host_available_bytes()
    if available is None:
        return None
    return MemoryLimit(available, jax.local_device_count(), "on the host")


def state_bytes_per_device(layout: StateLayout) -> int:
    """Bytes of parameters and optimizer state on each device, from every leaf's shard shape."""
    return _shard_bytes(layout.abstract_params) + _shard_bytes(layout.abstract_opt_state)


def _shard_bytes(tree) -> int:
    leaves = jax.tree.leaves(tree)
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in leaves)


def host_available_bytes() -> int | None:
    """Memory this process may still take on the host: MemAvailable, capped by `ulimit -v` less the
    address space already mapped. None where /proc cannot say."""
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(meminfo["MemAvailable"].split()[0]) * 1024
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        mapped = int(status["VmSize"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return available if soft == resource.RLIM_INFINITY else min(available, soft - mapped)


def check_state_fits(
    cfg: RunConfig, layout: StateLayout, limit: MemoryLimit | None, members: int = 1
) -> None:
    """Refuse a state (`members` of them, for a population) larger than the memory there is, whatever the
    step would add to it."""
    needed = members * state_bytes_per_device(layout) * (limit.devices if limit else 1)
    if limit is not None and needed > limit.bytes:
        raise UserError(
            f"{_size(cfg, members)}: its parameters and AdamW state alone need {human_bytes(needed)} "
            f"{limit.where}, more than the {human_bytes(limit.bytes)} available; {_ADVICE}"
        )


def check_run_fits(
    cfg: RunConfig, layout: StateLayout, tx: optax.GradientTransformation, mesh: Mesh, members: int = 1
) -> MemoryEstimate:
    """The step's memory per device, refused (`UserError`) when more than there is; before any state is
    allocated or the training loop compiled. The formula decides unless it lies within FORMULA_FACTOR of
    the limit; then the step is compiled on the abstract state and its memory analysis decides. A
    population of `members` runs holds every member's state and one step's temporaries at a time."""
    limit = memory_limit()
    check_state_fits(cfg, layout, limit, members)
    shape, remat_saves = dict(mesh.shape), jax.default_backend() != "cpu"
    formula = estimate = run_formula(cfg, shape, remat_saves).holding(members)
    if limit is None:
        return estimate
    ratio = formula.total * limit.devices / limit.bytes
    if 1 / FORMULA_FACTOR < ratio < FORMULA_FACTOR:
        compiled = compiled_step_estimate(layout, tx, mesh, cfg)
        estimate = formula if compiled is None else compiled.holding(members)
    if estimate.total * limit.devices > limit.bytes:
        devices = f" x {limit.devices} devices" if limit.devices > 1 else ""
        scale = estimate.activations / max(formula.activations, 1)
        advice = (
            what_would_fit(cfg, shape, limit.bytes, limit.devices, remat_saves, scale)
            if members == 1
            else "train fewer runs together (launch.population) or each alone"
        )
        raise UserError(
            f"{_size(cfg, members)} with micro-batches of {_rows(cfg)} tokens needs {estimate.describe()}"
            f"{devices}, more than the {human_bytes(limit.bytes)} available {limit.where}; {advice}"
        )
    return estimate


def compiled_step_estimate(
    layout: StateLayout, tx: optax.GradientTransformation, mesh: Mesh, cfg: RunConfig
) -> MemoryEstimate | None:
    """The trainer's step (the flat one the run will compile) lowered on the abstract state and compiled,
    for its memory analysis (None where the backend gives none); nothing of the real state is allocated."""
    M, B, T = cfg.train.micro_batches, cfg.train.batch_size, cfg.model.T
    step = make_flat_train_step(layout, tx, mesh, dropout=cfg.model.dropout > 0)
    rep = replicated(mesh)
    batch = jax.ShapeDtypeStruct((M, B // M, T + 1), jnp.int32, sharding=microbatch_sharding(mesh))
    scalars = (
        jax.ShapeDtypeStruct((), jnp.int32, sharding=rep),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=rep),
    )
    with jax.set_mesh(mesh):
        leaves = jax.tree.leaves((layout.abstract_params, layout.abstract_opt_state))
        compiled = step.lower(leaves, batch, *scalars).compile()
    return compiled_estimate(
        compiled, _shard_bytes(layout.abstract_params), _shard_bytes(layout.abstract_opt_state)
    )


def log_estimate(estimate: MemoryEstimate) -> None:
    log.info("memory estimate: %s", estimate.describe())


def out_of_memory(cfg: RunConfig) -> UserError:
    return UserError(
        f"out of memory: {_size(cfg)} with micro-batches of {_rows(cfg)} tokens does not fit; "
        f"{_ADVICE}, or smaller micro-batches (train.batch_size, train.micro_batches)"
    )


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (
        isinstance(err, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(err)
    )


def _size(cfg: RunConfig, members: int = 1) -> str:
    m = cfg.model
    model = f"the model (model.D={m.D}, model.L={m.L}, {m.params:,} parameters)"
    return model if members == 1 else f"a population of {members} runs of {model}"


def _rows(cfg: RunConfig) -> str:
    return f"{cfg.train.batch_size // cfg.train.micro_batches}x{cfg.model.T}"
