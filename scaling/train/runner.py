"""The step loop: state carried from step to step, what stays fixed, and the steps themselves.

Metrics are pulled to the host one step late, so dispatch of the next step never waits on the previous
one; at sync points (end, checkpoint, evaluation, stop) the queued step is handled at once. `_flush` is
the one place a run is declared diverged.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from scaling.console import progress_bar
from scaling.data import TokenDataset, train_batch
from scaling.errors import RunFailed
from scaling.model.sharding import global_array, microbatch_sharding
from scaling.records import METRIC_COLUMNS
from scaling.track.tracker import NO_TRACKING, Tracking
from scaling.train.checkpoint import CheckpointStore
from scaling.train.evaluate import evaluate, make_eval_step
from scaling.train.mfu import mfu, peak_flops_per_device
from scaling.train.optimizer import learning_rates
from scaling.train.progress import Progress, save_branch_point, save_checkpoint
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import RunDir, os_error_line
from scaling.train.step import make_flat_train_step

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """What the loop changes from step to step: the device state (the leaves of params and optimizer
    state, as the flat step takes them), the steps done, the last finished step whose metrics are still on
    the device (read one step late, so dispatch never waits on them), the recent step times and the
    host-side record. `status` turns completed, diverged or interrupted."""

    leaves: list
    treedef: Any
    step: int
    record: Progress
    status: str = "running"
    error: str = ""  # why a failed run stopped, one line
    pending: tuple[int, dict, float] | None = None
    tick: float = 0.0
    window: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, params: Any, opt_state: Any, step: int, record: Progress) -> LoopState:
        leaves, treedef = jax.tree.flatten((params, opt_state))
        return cls(leaves, treedef, step, record)

    @property
    def params(self) -> Any:
        return jax.tree.unflatten(self.treedef, self.leaves)[0]

    @property
    def opt_state(self) -> Any:
        return jax.tree.unflatten(self.treedef, self.leaves)[1]


@dataclass(frozen=True)
class LoopContext:
    """What stays fixed while the loop runs."""

    cfg: RunConfig
    dataset: TokenDataset
    run: RunDir
    store: CheckpointStore
    step_fn: Any
    eval_step: Any
    mesh: Any
    micro_sharding: Any
    process_index: int
    process_count: int
    lrs: np.ndarray
    peak: Any
    bar: Any
    is_main: bool
    stop: dict
    started: float
    compiled: Any = None  # the step compiled ahead of time for this run's shapes (`_compile`)
    branch_store: CheckpointStore | None = None  # where a run with train.branches keeps its branch points
    branch_steps: frozenset[int] = frozenset()
    tracker: Tracking = NO_TRACKING  # TensorBoard / W&B, sent every metrics row (`scaling.track`)

    def batch_at(self, step: int) -> jax.Array:
        B, M, T = self.cfg.train.batch_size, self.cfg.train.micro_batches, self.cfg.model.T
        local = train_batch(
            self.dataset.train,
            seed=self.cfg.train.seed,
            step=step,
            global_batch=B,
            seq_len=T,
            process_index=self.process_index,
            process_count=self.process_count,
        )
        return global_array(local.reshape(M, -1, T + 1), self.micro_sharding, (M, B // M, T + 1))

    def step(self, loop: LoopState, i: int) -> dict:
        # NumPy scalars: a call with two jnp scalars took ~0.3 ms more, a tenth of a small model's step.
        loop.leaves, metrics = self.compiled(
            loop.leaves, self.batch_at(i), np.int32(i), np.float32(self.lrs[i])
        )
        return metrics


def loop_context(
    cfg, dataset, run, store, layout, tx, mesh, is_main, progress, stop, started, start
) -> LoopContext:
    S = cfg.train.steps
    bar = progress_bar(total=S, initial=start, disable=not (progress and is_main), unit="step", desc=cfg.name)
    return LoopContext(
        cfg=cfg,
        dataset=dataset,
        run=run,
        store=store,
        step_fn=make_flat_train_step(layout, tx, mesh, dropout=cfg.model.dropout > 0),
        eval_step=make_eval_step(layout, mesh),
        mesh=mesh,
        micro_sharding=microbatch_sharding(mesh),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        lrs=learning_rates(cfg.optim, S),
        peak=peak_flops_per_device(),
        bar=bar,
        is_main=is_main,
        stop=stop,
        started=started,
    )


def compile_step(ctx: LoopContext, loop: LoopState) -> tuple[LoopContext, float]:
    """The context with the step compiled ahead of time (its memory analysis logged), and the seconds."""
    S, start = ctx.cfg.train.steps, loop.step
    compile_start = time.perf_counter()
    lr = np.float32(ctx.lrs[min(start, S - 1)])
    compiled = ctx.step_fn.lower(loop.leaves, ctx.batch_at(start), np.int32(start), lr).compile()
    seconds = time.perf_counter() - compile_start
    log.info("train step compiled in %.1f s; memory: %s", seconds, compiled.memory_analysis())
    return dataclasses.replace(ctx, compiled=compiled), seconds


def run_steps(ctx: LoopContext, loop: LoopState, timings: dict) -> None:
    """Step to the end, a divergence, a stop or a failed write; the last save is awaited, so a completed
    run's final checkpoint exists. A checkpoint or metrics write that fails (a full disk) makes the run
    `failed` with `loop.error` saying why; the checkpoints before it are kept."""
    ctx.stop["looping"] = True  # SIGTERM now checkpoints instead of leaving at once
    with failures(loop):
        _steps(ctx, loop, timings)
        finish_steps(ctx, loop)
    ctx.bar.close()
    if loop.status == "running":
        loop.status = "completed"


@contextmanager
def failures(loop: LoopState):
    """A checkpoint or metrics write that fails inside makes the run `failed`, `loop.error` saying why."""
    try:
        yield
    except (RunFailed, OSError) as err:
        loop.status = "failed"
        loop.error = str(err) if isinstance(err, RunFailed) else f"cannot write {os_error_line(err)}"


def _steps(ctx: LoopContext, loop: LoopState, timings: dict) -> None:
    """The steps, until the end or one that ends the loop. A failed asynchronous checkpoint write is
    noticed at the first step after it ended."""
    start = loop.step
    loop.tick = time.perf_counter()
    for i in range(start, ctx.cfg.train.steps):
        if not step_once(ctx, loop, i, start == i, timings):
            break


def finish_steps(ctx: LoopContext, loop: LoopState) -> None:
    """Handle the step still queued and await the last save, so a completed run's final checkpoint exists."""
    _flush(ctx, loop)
    ctx.store.wait()


def step_once(ctx: LoopContext, loop: LoopState, i: int, first: bool, timings: dict) -> bool:
    """Take step `i` (the session's first when `first`) and handle the one before; False when the loop
    must end (diverged, stopped)."""
    metrics = ctx.step(loop, i)
    ctx.store.check_saved()
    if not _flush(ctx, loop):
        return False
    loop.step = i + 1
    if first:
        jax.block_until_ready(metrics)
        timings["startup_seconds"] = time.perf_counter() - ctx.started
    return _after_step(ctx, loop, metrics)


def _after_step(ctx: LoopContext, loop: LoopState, metrics: dict) -> bool:
    """Queue the finished step's metrics; at a sync point (end, checkpoint, evaluation, stop) handle them
    now and checkpoint if due. Returns False when the loop must end."""
    cfg, step, stopping = ctx.cfg.train, loop.step, ctx.stop["stop"]
    at_end, at_branch = step == cfg.steps, step in ctx.branch_steps
    must_sync = at_end or at_branch or step % cfg.checkpoint_every == 0 or step % cfg.eval_every == 0
    if must_sync or stopping:
        jax.block_until_ready(metrics)
    now = time.perf_counter()
    loop.pending, loop.tick = (step, metrics, now - loop.tick), now
    if not (must_sync or stopping):
        return True
    if not _flush(ctx, loop):
        return False
    loop.tick = time.perf_counter()
    if at_branch:  # before the checkpoint of the same step: a resume from that one would not pass it again
        _save_branch_point(ctx, loop)
    if step % cfg.checkpoint_every == 0 or at_end or stopping:
        save_checkpoint(
            ctx.store, step, loop.params, loop.opt_state, loop.record, ctx.dataset, ctx.cfg, ctx.started
        )
        loop.tick = time.perf_counter()
    if stopping:
        loop.status = "interrupted"
        return False
    return True


def _save_branch_point(ctx: LoopContext, loop: LoopState) -> None:
    save_branch_point(
        ctx.branch_store,
        loop.step,
        loop.params,
        loop.opt_state,
        loop.record,
        ctx.dataset,
        ctx.cfg,
        ctx.started,
    )
    loop.tick = time.perf_counter()


def _flush(ctx: LoopContext, loop: LoopState) -> bool:
    """Handle the queued step, if any; the one place a run is declared diverged."""
    if loop.pending is None:
        return True
    ok = _handle(ctx, loop, *loop.pending)
    loop.pending = None
    if not ok:
        loop.status = "diverged"
    return ok


def _handle(ctx: LoopContext, loop: LoopState, step: int, metrics: dict, seconds: float) -> bool:
    """Record finished step `step` (progress, evaluation, metrics row); False when it diverged."""
    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not (math.isfinite(host["loss"]) and math.isfinite(host["grad_norm"])):
        log.error("step %d: loss %s, grad norm %s: diverged", step, host["loss"], host["grad_norm"])
        return False
    cfg, record = ctx.cfg, loop.record
    record.recent_losses = ([*record.recent_losses, host["loss"]])[-10:]
    record.step_seconds += seconds
    record.steps_timed += 1
    loop.window.append(seconds)
    del loop.window[:-20]
    tokens_per_step = cfg.tokens_per_step
    tps = tokens_per_step * len(loop.window) / sum(loop.window) if sum(loop.window) > 0 else float("nan")
    ctx.bar.update(1)
    ctx.bar.set_postfix(loss=f"{host['loss']:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
    evaluating = step % cfg.train.eval_every == 0 or step == cfg.train.steps
    if evaluating:  # every process takes part: evaluation runs collectives
        record.last_val_loss = evaluate(cfg, ctx.dataset, ctx.eval_step, loop.params, ctx.mesh)
    if ctx.is_main and (evaluating or step % cfg.train.log_every == 0):
        row = _metrics_row(ctx, step, host, tps, record.last_val_loss if evaluating else None)
        ctx.run.append_metrics(row)
        ctx.tracker.log(step, row)
    return True


def _metrics_row(ctx: LoopContext, step: int, host: dict, tps: float, val_loss: float | None) -> dict:
    """One metrics.jsonl row, columns as `records.METRIC_COLUMNS` names them."""
    cfg = ctx.cfg
    tokens = step * cfg.tokens_per_step
    values = (
        step,
        tokens,
        tokens * cfg.model.flops_per_token,
        host["loss"],
        float(ctx.lrs[step - 1]),
        host["grad_norm"],
        host["update_norm"],
        tps,
        mfu(tps * cfg.model.flops_per_token, jax.device_count(), ctx.peak),
    )
    row = dict(zip(METRIC_COLUMNS, values, strict=True))
    if val_loss is not None:
        row["val_loss"] = val_loss
    return row
