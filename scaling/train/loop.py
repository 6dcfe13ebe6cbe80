"""`train`: claim the run directory, resume or start, run the step loop (`runner`), write the summary.

Batches are a pure function of (seed, step), so resuming from a checkpoint at step k replays exactly the
steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

import jax
from jax.experimental import multihost_utils

from scaling.config_io import to_dict
from scaling.data import TokenDataset, check_context_fits, eval_batches, load_dataset
from scaling.errors import RunFailed, UserError
from scaling.model.sharding import (
    check_batch_divisible,
    log_shardings,
    make_mesh,
)
from scaling.records import RunSummary
from scaling.track.tracker import Tracking, check_installed, open_tracker
from scaling.train.branch import branch_ends, branch_steps, open_branch_store, start_from_stable
from scaling.train.checkpoint import CheckpointStore
from scaling.train.memory import check_run_fits, is_out_of_memory, log_estimate, out_of_memory
from scaling.train.optimizer import make_optimizer
from scaling.train.progress import restore_or_init, run_summary, save_branch_point
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import RunDir, os_error_line
from scaling.train.run_guard import check_startup, exclusive, stop_on_signals
from scaling.train.runner import LoopState, compile_step, loop_context, run_steps
from scaling.train.state import make_layout


def _validate(cfg: RunConfig, dataset: TokenDataset, mesh) -> None:
    if cfg.model.V < dataset.vocab_size:
        raise UserError(
            f"model.V={cfg.model.V} is smaller than the vocabulary of encoding {cfg.data.encoding!r} "
            f"({dataset.vocab_size}); set model.V >= {dataset.vocab_size}"
        )
    check_context_fits(dataset.train, cfg.model.T, "train")
    eval_batches(  # checks the validation split holds one evaluation batch of full context
        dataset.val, batch=cfg.train.batch_size, seq_len=cfg.model.T, max_batches=1
    )
    branch_ends(cfg)  # checks that every branch starts in the stable phase
    if cfg.model.attention == "cudnn" and jax.default_backend() != "gpu":
        raise UserError(
            f"model.attention: cudnn is a GPU kernel, and this run is on {jax.default_backend()}; "
            "use model.attention: xla (the same function)"
        )
    rows_per_micro = cfg.train.batch_size // cfg.train.micro_batches
    check_batch_divisible(rows_per_micro, mesh)
    if rows_per_micro % jax.process_count():
        raise UserError(
            f"{rows_per_micro} rows per micro-batch cannot be split over {jax.process_count()} processes"
        )


def train(cfg: RunConfig, out_dir: str | Path, *, progress: bool = True, verbose: bool = False) -> RunSummary:
    """Train (or resume) the run in `out_dir` to `cfg.train.steps`; returns the summary it wrote. A failure
    after training began raises `RunFailed` once summary.json says `failed`; a start-up that fails in a
    directory that was empty leaves it so, so that a rerun with another config is not blocked by it."""
    run = RunDir(out_dir)
    is_main = jax.process_index() == 0
    fresh = is_main and run.create()
    try:
        with (
            exclusive(run, is_main),
            stop_on_signals() as stop,
            open_tracker(cfg.track, run.path, cfg.name, to_dict(cfg), main=is_main) as tracker,
        ):
            try:
                return _train(cfg, run, is_main, progress, verbose, stop, tracker)
            except BaseException:
                if fresh and not run.trained():  # still holding the lock: no other trainer is in it
                    run.discard()
                raise
    except BaseException as err:
        if isinstance(err, OSError):
            raise UserError(os_error_line(err)) from None
        if is_out_of_memory(err):
            raise out_of_memory(cfg) from None
        raise


def prepare(
    cfg: RunConfig, progress: bool, stop: dict, members: int = 1
) -> tuple[TokenDataset, Any, Any, Any, Any]:
    """Everything checked before the run directory is claimed: data, mesh, layout and the memory of the
    step, with `members` states for a population (returned: the estimate, logged once the run has its
    log)."""
    check_installed(cfg.track)
    dataset = load_dataset(cfg.data, progress=progress)
    check_startup(stop)
    mesh = make_mesh(cfg.mesh)
    _validate(cfg, dataset, mesh)
    tx = make_optimizer(cfg.optim)
    layout = make_layout(cfg.model, tx, mesh)
    estimate = check_run_fits(cfg, layout, tx, mesh, members)
    return dataset, mesh, tx, layout, estimate


def _train(
    cfg: RunConfig, run: RunDir, is_main: bool, progress: bool, verbose: bool, stop: dict, tracker: Tracking
) -> RunSummary:
    started = time.perf_counter()
    dataset, mesh, tx, layout, estimate = prepare(cfg, progress and is_main, stop)
    check_startup(stop)
    if is_main:
        run.claim(to_dict(cfg))  # before the log: a refused directory gets no train.log
        setup_logging(verbose, run)
    multihost_utils.sync_global_devices("run directory claimed")
    store = CheckpointStore(run.checkpoint_dir, cfg.train.keep_checkpoints)
    branch_store = open_branch_store(cfg, run)
    try:
        state_start = time.perf_counter()
        if cfg.train.branch_from and not store.all_steps():
            params, opt_state, record, start = start_from_stable(cfg, run, layout, dataset)
        else:
            params, opt_state, record, start = restore_or_init(store, layout, cfg, tx, dataset, run.path)
        jax.block_until_ready(params)
        timings = {"state_seconds": time.perf_counter() - state_start}
        check_startup(stop)
        if is_main:
            run.truncate_metrics(start)
            log_shardings(params)
            log_estimate(estimate)  # after the restore: a refused resume leaves train.log as it was
        points = branch_steps(cfg)
        if start in points:  # resumed from the checkpoint at a branch point: the point is kept (once)
            save_branch_point(branch_store, start, params, opt_state, record, dataset, cfg, started)
        summary = run.summary()
        if start >= cfg.train.steps and summary is not None and summary.completed:
            check_startup(stop)
            return summary
        loop = LoopState.of(params, opt_state, start, record)
        with jax.set_mesh(mesh):
            ctx = loop_context(
                cfg, dataset, run, store, layout, tx, mesh, is_main, progress, stop, started, start
            )
            ctx = dataclasses.replace(ctx, branch_store=branch_store, branch_steps=points, tracker=tracker)
            ctx, timings["compile_seconds"] = compile_step(ctx, loop)
            check_startup(stop)
            run_steps(ctx, loop, timings)
    finally:
        store.close()
        if branch_store is not None:
            branch_store.close()
    record.wall_seconds += time.perf_counter() - started
    summary = run_summary(cfg, dataset, record, loop.status, loop.step, ctx.peak, timings)
    if is_main:
        write_summary(run, summary, loop.error)
        tracker.summary(dataclasses.asdict(summary))
    if loop.error:
        raise RunFailed(loop.error)
    return summary


def write_summary(run: RunDir, summary: RunSummary, error: str) -> None:
    """The summary, or (a full disk) `RunFailed` naming why it and any earlier failure were not saved."""
    try:
        run.write_summary(summary)
    except OSError as err:
        earlier = f"{error}; then " if error else ""
        raise RunFailed(
            f"{earlier}summary.json could not be written ({os_error_line(err)}); the checkpoints are kept: "
            "rerun the same command to resume"
        ) from None


class _LogFile(logging.FileHandler):
    """train.log; a line that cannot be written (a full disk) is dropped, not printed with a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def setup_logging(verbose: bool, *runs: RunDir) -> None:
    """Everything at INFO into the run's train.log; the console gets warnings, or INFO when verbose.
    orbax logs through absl: its warnings and errors (each with a traceback) go to train.log only, the
    failure they report reaching the console as the trainer's one-line error."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handlers = [_LogFile(run.path / "train.log") for run in runs]
    absl_files = [_LogFile(run.path / "train.log") for run in runs]
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    for handler in (*file_handlers, *absl_files):
        handler.setFormatter(formatter)
    for handler in absl_files:
        handler.setLevel(logging.WARNING)
    _route("scaling", logging.INFO, *file_handlers, console)
    _route("absl", None, *absl_files)


def _route(name: str, level: int | None, *handlers: logging.Handler) -> None:
    """Logger `name` writes to `handlers` only (replacing an earlier run's, in the same process)."""
    logger = logging.getLogger(name)
    if level is not None:
        logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    for handler in handlers:
        logger.addHandler(handler)
