"""`train_population`: runs of one model shape trained in one process, each into its own run directory.

Members share what a solo run builds once (data, mesh, layout, the initializer, the compiled step and
evaluation: one compile for all of them) and take their steps in turn, each through that compiled step.
A member is so the run trained alone, bit for bit. Stacking the members into one vmapped (or
`lax.map`ped) program is not (XLA fuses the update differently there: parameters part by ~1e-6 within
two steps on CPU float32); `lax.map` is bitwise its own population of one and 1.2-1.7x faster on one core
at the CPU ladders' shapes, so it would need `scaling train` to run through it too
(`benchmarks/bench_population.py`, RESULTS.md).

Everything per member goes through the solo loop's own code: its rates, data order and initial state
from its config, its checkpoints, metrics rows and summary, divergence (a diverged member stops, the
others go on) and resume (each from its own latest checkpoint; members behind the others train alone
until they catch up).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
from jax.experimental import multihost_utils

from scaling.config_io import to_dict
from scaling.console import progress_bar
from scaling.errors import RunFailed, UserError
from scaling.model.sharding import log_shardings
from scaling.records import RunSummary
from scaling.train.checkpoint import CheckpointStore
from scaling.train.grouping import check_population
from scaling.train.loop import prepare, setup_logging, write_summary
from scaling.train.memory import is_out_of_memory, log_estimate, out_of_memory
from scaling.train.progress import restore_or_init, run_summary
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import RunDir, os_error_line
from scaling.train.run_guard import check_startup, exclusive, stop_on_signals
from scaling.train.runner import (
    LoopContext,
    LoopState,
    compile_step,
    failures,
    finish_steps,
    loop_context,
    step_once,
)
from scaling.train.state import make_initializer

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One run of the population: its config and directory, and once started its loop."""

    cfg: RunConfig
    run: RunDir
    fresh: bool = False
    store: CheckpointStore | None = None
    ctx: LoopContext | None = None
    loop: LoopState | None = None
    start: int = 0
    timings: dict = field(default_factory=dict)
    summary: RunSummary | None = None  # set when the run was complete before this session

    @property
    def stepping(self) -> bool:
        return self.summary is None and self.loop.status == "running"


def train_population(
    cfgs: list[RunConfig], outs: list[str | Path], *, progress: bool = True, verbose: bool = False
) -> list[RunSummary]:
    """Train (or resume) every member to its `train.steps`; the summaries, in the members' order. A member
    that failed after training began raises `RunFailed` once every summary is written."""
    check_population(cfgs, [Path(out) for out in outs])
    members = [Member(cfg, RunDir(out)) for cfg, out in zip(cfgs, outs, strict=True)]
    is_main = jax.process_index() == 0
    try:
        with contextlib.ExitStack() as stack:
            try:
                for member in members:
                    member.fresh = is_main and member.run.create()
                    stack.enter_context(exclusive(member.run, is_main))
                stop = stack.enter_context(stop_on_signals())
                return _train(members, is_main, progress, verbose, stop)
            except BaseException:
                for member in members:  # still holding the locks: no other trainer is in them
                    if member.fresh and not member.run.trained():
                        member.run.discard()
                raise
    except BaseException as err:
        if isinstance(err, OSError):
            raise UserError(os_error_line(err)) from None
        if is_out_of_memory(err):
            raise out_of_memory(cfgs[0]) from None
        raise


def _train(members: list[Member], is_main: bool, progress: bool, verbose: bool, stop: dict):
    started = time.perf_counter()
    dataset, mesh, tx, layout, estimate = prepare(members[0].cfg, progress and is_main, stop, len(members))
    check_startup(stop)
    if is_main:
        for member in members:
            member.run.claim(to_dict(member.cfg))
        setup_logging(verbose, *(member.run for member in members))
    multihost_utils.sync_global_devices("run directories claimed")
    with contextlib.ExitStack() as stores:
        for member in members:
            member.store = CheckpointStore(member.run.checkpoint_dir, member.cfg.train.keep_checkpoints)
            stores.callback(member.store.close)
        init = make_initializer(members[0].cfg.model, tx, layout)
        for member in members:
            _restore(member, layout, tx, dataset, is_main, init)
        check_startup(stop)
        active = [member for member in members if member.summary is None]
        if active and is_main:
            log_estimate(estimate)  # after the restores: a refused resume leaves train.log as it was
        if active:
            log_shardings(active[0].loop.params)
            with jax.set_mesh(mesh):
                _contexts(active, dataset, layout, tx, mesh, is_main, stop, started)
                check_startup(stop)
                _run(active, stop, progress and is_main)
    summaries = [_summary(member, dataset, started, is_main) for member in members]
    failed = [member for member in members if member.loop is not None and member.loop.error]
    if failed:
        raise RunFailed("; ".join(f"{member.cfg.name}: {member.loop.error}" for member in failed))
    return summaries


def _restore(member: Member, layout, tx, dataset, is_main: bool, init) -> None:
    """The member's latest checkpoint (or a fresh state), its metrics cut back to it; a member already
    complete keeps its summary and trains no more."""
    state_start = time.perf_counter()
    cfg, run = member.cfg, member.run
    params, opt_state, record, start = restore_or_init(member.store, layout, cfg, tx, dataset, run.path, init)
    jax.block_until_ready(params)
    member.timings["state_seconds"] = time.perf_counter() - state_start
    if is_main:
        run.truncate_metrics(start)
    summary = run.summary()
    if start >= cfg.train.steps and summary is not None and summary.completed:
        member.summary = summary
        return
    member.loop, member.start = LoopState.of(params, opt_state, start, record), start


def _contexts(members, dataset, layout, tx, mesh, is_main, stop, started) -> None:
    """Each member's loop context, all sharing the first one's compiled step and evaluation."""
    shared: LoopContext | None = None
    for member in members:
        cfg, start = member.cfg, member.start
        ctx = loop_context(
            cfg, dataset, member.run, member.store, layout, tx, mesh, is_main, False, stop, started, start
        )
        if shared is None:
            shared, seconds = compile_step(ctx, member.loop)
            ctx = shared
        else:
            ctx = dataclasses.replace(
                ctx, step_fn=shared.step_fn, eval_step=shared.eval_step, compiled=shared.compiled
            )
        member.ctx, member.timings["compile_seconds"] = ctx, seconds


def _run(members: list[Member], stop: dict, progress: bool) -> None:
    """Step `i` of every member at step `i` in turn, from the earliest member's step to the longest run's
    end; a member that ends (diverged, stopped, failed) drops out. Then each member's last step is handled
    and its last save awaited, as a solo run's are."""
    stop["looping"] = True  # SIGTERM now checkpoints every member instead of leaving at once
    total = sum(member.cfg.train.steps for member in members)
    done = sum(member.start for member in members)
    bar = progress_bar(total=total, initial=done, disable=not progress, unit="step", desc="population")
    for i in range(min(m.start for m in members), max(m.cfg.train.steps for m in members)):
        stopping = stop["stop"]  # every member stepping in this round sees it, and checkpoints
        due = [m for m in members if m.stepping and m.loop.step == i < m.cfg.train.steps]
        for member in due:
            _step(member, i)
        bar.update(len(due))
        if stopping:
            break
    bar.close()
    for member in members:
        if member.stepping and member.loop.step < member.cfg.train.steps:  # stopped before its turn
            member.loop.status = "interrupted"
        if member.loop.status != "failed":
            with failures(member.loop):
                finish_steps(member.ctx, member.loop)
        if member.loop.status == "running":
            member.loop.status = "completed"


def _step(member: Member, i: int) -> None:
    """Step `i` of one member; a member that ends here is named in the log, which all members share."""
    loop = member.loop
    if i == member.start:
        loop.tick = time.perf_counter()  # a member behind the others starts its clock at its first step
    with failures(loop):
        step_once(member.ctx, loop, i, i == member.start, member.timings)
    if loop.status in ("diverged", "failed"):
        log.warning("member %s: %s at step %d; the others go on", member.cfg.name, loop.status, loop.step)


def _summary(member: Member, dataset, started: float, is_main: bool) -> RunSummary:
    """The member's summary, written to its run directory as a solo run writes it."""
    if member.summary is not None:
        return member.summary
    loop, ctx = member.loop, member.ctx
    loop.record.wall_seconds += time.perf_counter() - started
    summary = run_summary(member.cfg, dataset, loop.record, loop.status, loop.step, ctx.peak, member.timings)
    if is_main:
        write_summary(member.run, summary, loop.error)
    return summary
