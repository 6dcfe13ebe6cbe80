"""Multi-process start-up: one process per host (or per local process group) joined by jax.distributed."""

from __future__ import annotations

import jax

from scaling.errors import UserError


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join a multi-process run when asked; on TPU pods and SLURM, `auto` lets JAX read the environment."""
    given = [coordinator, num_processes, process_id]
    if all(v is None for v in given):
        return
    if coordinator == "auto":
        jax.distributed.initialize()
        return
    if any(v is None for v in given):
        raise UserError("a multi-process run needs --coordinator, --num-processes and --process-id together")
    if not 0 <= process_id < num_processes:
        raise UserError(f"--process-id {process_id} must be in [0, {num_processes})")
    jax.distributed.initialize(coordinator, num_processes, process_id)
