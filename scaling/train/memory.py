"""Out of memory as a one-line error: a training state that cannot fit is refused before anything is
allocated (so no allocator aborts the process under `ulimit -v`), and an XLA RESOURCE_EXHAUSTED or a
MemoryError later (gradients, activations) is named with the model's size and what to change."""

from __future__ import annotations

import math
import resource
from pathlib import Path

import jax

from scaling.errors import UserError
from scaling.train.run_config import RunConfig
from scaling.train.state import StateLayout

_ADVICE = "choose a smaller model (model.D, model.L) or shard it over more devices (mesh.fsdp)"


def state_bytes_per_device(layout: StateLayout) -> int:
    """Bytes of parameters and optimizer state on each device, from every leaf's shard shape."""
    leaves = jax.tree.leaves((layout.abstract_params, layout.abstract_opt_state))
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


def check_state_fits(cfg: RunConfig, layout: StateLayout) -> None:
    """Refuse a state larger than the memory there is: each accelerator's limit, or the host's for the
    CPU devices, which share it."""
    per_device = state_bytes_per_device(layout)
    device = jax.local_devices()[0]
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        needed, available, where = per_device, int(stats["bytes_limit"]), f"per {device.platform} device"
    else:
        needed, available, where = (
            per_device * jax.local_device_count(),
            host_available_bytes(),
            "on the host",
        )
    if available is not None and needed > available:
        raise UserError(
            f"{_size(cfg)}: its parameters and AdamW state alone need {_gb(needed)} {where}, more than the "
            f"{_gb(available)} available; {_ADVICE}"
        )


def out_of_memory(cfg: RunConfig) -> UserError:
    rows = cfg.train.batch_size // cfg.train.micro_batches
    return UserError(
        f"out of memory: {_size(cfg)} with micro-batches of {rows}x{cfg.model.T} tokens does not fit; "
        f"{_ADVICE}, or smaller micro-batches (train.batch_size, train.micro_batches)"
    )


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (
        isinstance(err, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(err)
    )


def _size(cfg: RunConfig) -> str:
    m = cfg.model
    return f"the model (model.D={m.D}, model.L={m.L}, {m.params:,} parameters)"


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB"
