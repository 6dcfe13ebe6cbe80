"""What a run carries across resumes and leaves at its end: the host-side progress record (stored in each
checkpoint's metadata), restore-or-init with the checks that a checkpoint belongs to this run's data, the
checkpoint save, and the run's summary."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from scaling.data import TokenDataset
from scaling.errors import UserError
from scaling.records import RunSummary
from scaling.train.checkpoint import CheckpointStore, CorruptCheckpoint
from scaling.train.mfu import mfu
from scaling.train.run_config import RunConfig
from scaling.train.state import StateLayout, init_state

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Host-side running record of the run, carried across resumes through the checkpoint metadata."""

    wall_seconds: float = 0.0
    step_seconds: float = 0.0
    steps_timed: int = 0
    recent_losses: list[float] = field(default_factory=list)
    last_val_loss: float | None = None


def check_resume_matches(meta: dict, dataset: TokenDataset, cfg: RunConfig, directory: Path) -> None:
    if meta.get("encoding") != cfg.data.encoding or meta.get("vocab_size") != dataset.vocab_size:
        raise UserError(
            f"the checkpoint in {directory} was trained with encoding {meta.get('encoding')!r} "
            f"(vocabulary {meta.get('vocab_size')}), but the config asks for {cfg.data.encoding!r} "
            f"(vocabulary {dataset.vocab_size}); use the checkpoint's encoding or a new run directory"
        )
    if meta.get("data_fingerprint") != dataset.fingerprint:
        raise UserError(
            f"the checkpoint in {directory} was trained on different data (fingerprint "
            f"{meta.get('data_fingerprint')} != {dataset.fingerprint}); use a new run directory"
        )


def restore_or_init(
    store: CheckpointStore, layout: StateLayout, cfg: RunConfig, tx, dataset, path: Path, init=None
):
    """The newest readable checkpoint's state and progress record, or a fresh state at step 0 when there
    is no checkpoint (from `init(seed)` when given, else `init_state`). Unreadable newer checkpoints are
    set aside (one warning); when none is readable the newest one's error stands and nothing is moved."""
    corrupt: list[tuple[int, CorruptCheckpoint]] = []
    for step in reversed(store.all_steps()):
        try:
            check_resume_matches(store.read_meta(step), dataset, cfg, path)
            params, opt_state, meta = store.restore(step, layout)
        except CorruptCheckpoint as err:
            corrupt.append((step, err))
            continue
        if corrupt:
            _set_aside(store, corrupt, step)
        return params, opt_state, Progress(**meta["progress"]), step
    if corrupt:
        raise corrupt[0][1]
    if init is None:
        params, opt_state = init_state(cfg.model, tx, layout, cfg.train.seed)
    else:
        params, opt_state = init(cfg.train.seed)
    return params, opt_state, Progress(), 0


def _set_aside(store: CheckpointStore, corrupt: list[tuple[int, CorruptCheckpoint]], step: int) -> None:
    """Move the unreadable checkpoints out of the store (process 0; others only read) and say so once."""
    if jax.process_index() != 0:
        return
    moved = [store.set_aside(s) for s, _ in corrupt]
    steps = ", ".join(str(s) for s, _ in corrupt)
    log.warning(
        "checkpoint%s unreadable (%s): kept aside in %s; resuming from checkpoint %d",
        f"s {steps} are" if len(corrupt) > 1 else f" {steps} is",
        corrupt[0][1].reason,
        moved[0].parent,
        step,
    )


def save_checkpoint(store, step, params, opt_state, record, dataset, cfg, started) -> None:
    meta = {
        "step": step,
        "encoding": cfg.data.encoding,
        "vocab_size": dataset.vocab_size,
        "data_fingerprint": dataset.fingerprint,
        "progress": {
            **record.__dict__,
            "wall_seconds": record.wall_seconds + time.perf_counter() - started,
        },
    }
    store.save(step, params, opt_state, meta)


def save_branch_point(store, step, params, opt_state, record, dataset, cfg, started) -> None:
    """The state a cooldown branch starts from, written and awaited (a branch may start from it at once),
    unless the store has it already (a resumed run passes the point again)."""
    if step in store.all_steps():
        return
    save_checkpoint(store, step, params, opt_state, record, dataset, cfg, started)
    store.wait()


def run_summary(cfg, dataset, record: Progress, status: str, step: int, peak, timings: dict) -> RunSummary:
    """The run's record for the fitter; `timings` are this session's start-up costs (init or restore,
    compile, and start to end of the first step)."""
    m = cfg.model
    tokens = step * cfg.tokens_per_step
    tps = record.steps_timed * cfg.tokens_per_step / record.step_seconds if record.step_seconds else None
    return RunSummary(
        name=cfg.name,
        status=status,
        steps=step,
        params=m.params,
        params_nonembedding=m.params_nonembedding,
        params_embedding=m.params_embedding,
        tokens=tokens,
        flops=tokens * m.flops_per_token,
        flops_6nd=tokens * m.flops_per_token_6n,
        flops_per_token=m.flops_per_token,
        final_train_loss=float(np.mean(record.recent_losses)) if record.recent_losses else None,
        final_val_loss=record.last_val_loss,
        wall_seconds=record.wall_seconds,
        step_seconds=record.step_seconds,
        state_seconds=timings.get("state_seconds"),
        compile_seconds=timings.get("compile_seconds"),
        startup_seconds=timings.get("startup_seconds"),
        tokens_per_second=tps,
        mfu=mfu(tps * m.flops_per_token, jax.device_count(), peak) if tps else None,
        peak_flops_source=peak.source,
        encoding=cfg.data.encoding,
        vocab_size=dataset.vocab_size,
        data_fingerprint=dataset.fingerprint,
        devices=jax.device_count(),
        processes=jax.process_count(),
        epochs=tokens / dataset.train.size,
    )
