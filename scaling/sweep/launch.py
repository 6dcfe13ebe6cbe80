"""Local launcher: run a sweep's runs as `scaling train` subprocesses, several at once, each on its own
CPU cores (or GPUs), until every run is completed, failed or diverged. Runs of one model shape go to one
`scaling train-population` process (`populations`), which pays start-up and compilation once for them.

Idempotent: completed runs are skipped, interrupted ones resume from their checkpoints (the trainer does
that), failed and diverged ones are retried only with `retry_failed`. Runs claimed by another launcher
are waited for, so two launchers on one sweep share the work and both return when it is done.

Children run in their own session (Ctrl-C reaches only the launcher, which then stops them with SIGTERM
so they checkpoint) and, on Linux, get SIGTERM when the launcher dies, even by SIGKILL, so a killed
launcher leaves no orphan training in the background.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tqdm import tqdm

from scaling.console import progress_bar
from scaling.errors import UserError
from scaling.sweep.attempt import Decision, classify_member, decide, finish, skip_branch
from scaling.sweep.ledger import Claim, Ledger
from scaling.sweep.plan import PlannedRun
from scaling.sweep.populations import Population, populations
from scaling.sweep.spec import LaunchConfig
from scaling.sweep.status import RunState, run_state
from scaling.train.run_dir import RunDir

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Slot:
    """Where one worker's runs execute: pinned cores (cpu) and environment (devices)."""

    index: int
    cpus: tuple[int, ...] | None
    env: dict[str, str]

    def describe(self) -> str:
        if self.cpus is not None:
            return f"cores {','.join(map(str, self.cpus))}"
        return ", ".join(f"{k}={v}" for k, v in self.env.items()) or "all devices"


def make_slots(launch: LaunchConfig, workers: int) -> list[Slot]:
    """Split this process's cores (cpu) or the GPUs 0..N-1 (gpu) evenly between `workers`."""
    if launch.platform == "cpu":
        cores = sorted(os.sched_getaffinity(0))
        if workers > len(cores):
            raise UserError(f"{workers} workers need at least {workers} CPU cores; {len(cores)} available")
        per = len(cores) // workers
        env = {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(launch.devices_per_run)}
        return [Slot(i, tuple(cores[i * per : (i + 1) * per]), env) for i in range(workers)]
    if launch.platform == "gpu":
        d = launch.devices_per_run
        return [
            Slot(i, None, {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in range(i * d, (i + 1) * d))})
            for i in range(workers)
        ]
    if workers != 1:
        raise UserError("on tpu one run uses every chip of the host: use 1 worker")
    return [Slot(0, None, {})]


def _child_setup(cpus: tuple[int, ...] | None, parent: int) -> None:
    """In the child before exec: pin cores, and ask for SIGTERM if the launcher dies (Linux)."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)


@dataclass
class _Active:
    """One worker process and the runs it trains (one, or a population's members), each under its claim."""

    members: tuple[tuple[PlannedRun, Claim], ...]
    slot: Slot
    process: subprocess.Popen
    log: IO[bytes]
    log_start: int
    started: float = field(default_factory=time.time)


class LocalLauncher:
    def __init__(
        self,
        runs: tuple[PlannedRun, ...],
        ledger: Ledger,
        slots: list[Slot],
        *,
        population: int = 1,
        retry_failed: bool = False,
        progress: bool = True,
        smallest_first: bool = False,
        echo: Callable[[str], None] | None = None,
        poll_seconds: float = 0.5,
    ):
        self.runs = runs
        self.ledger = ledger
        self.slots = slots
        self.population = population
        self.retry_failed = retry_failed
        self.progress = progress
        self.smallest_first = smallest_first
        self.echo = echo or (lambda text: tqdm.write(text, file=sys.stderr))
        self.poll_seconds = poll_seconds
        self.active: dict[int, _Active] = {}
        self.done: dict[str, str] = {}  # run name -> final status in this session
        self.waited: set[str] = set()  # runs whose wait was announced

    def run(self) -> list[RunState]:
        """Run the sweep to the end; on KeyboardInterrupt (Ctrl-C, or SIGTERM as `scaling.cli` turns it)
        stop the children (they checkpoint) and re-raise."""
        for run in self.runs:
            self.ledger.write_config(run.config)
        # Largest first: the long runs start early, so the workers finish close together. Targets go
        # smallest first instead: each checks the fit, and the cheap checks report before the costly one.
        queue = list(populations(self.runs, self.population, len(self.slots)))
        if self.smallest_first:
            queue.reverse()
        total = sum(r.own_flops for r in self.runs)
        bar = progress_bar(total=total, unit="FLOP", unit_scale=True, disable=not self.progress, desc="sweep")
        try:
            while queue or self.active:
                self._reap()
                queue = self._start_some(queue)
                bar.n = min(total, self._flops_done())
                bar.set_postfix_str(f"{len(self.done)}/{len(self.runs)} runs, {len(self.active)} running")
                time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            self._stop_all()
            raise
        finally:
            bar.close()
        return [run_state(run, self.ledger) for run in self.runs]

    def _start_some(self, queue: list[Population]) -> list[Population]:
        """Start what the free slots can take: each population's members this launcher can claim, in one
        process; members held elsewhere stay queued (as a population of their own) to wait for."""
        waiting = []
        for position, unit in enumerate(queue):
            free = [s for s in self.slots if s.index not in self.active]
            if not free:
                return waiting + queue[position:]
            starting, held = [], []
            for run in unit.runs:
                decision = self._decide(run)
                if decision.action == "wait":
                    held.append(run)
                    if run.name not in self.waited:
                        self.waited.add(run.name)
                        self.echo(f"wait {run.name}: {decision.reason}")
                elif decision.action == "skip":
                    self._skipped(run, decision)
                else:
                    assert decision.claim is not None
                    starting.append((run, decision.claim))
            if held:
                waiting.append(Population(tuple(held)))
            if starting:
                self._spawn(tuple(starting), free[0])
        return waiting

    def _decide(self, run: PlannedRun) -> Decision:
        """`decide`, except that a branch whose stable run ended in this session without completing (it
        would wait for it forever: nothing here starts that run again) is skipped, to rerun later."""
        stable = self.done.get(run.branch_of or "")
        if stable is not None and stable != "completed":
            return skip_branch(run, self.ledger, f"its stable run {run.branch_of} {stable}: rerun the sweep")
        return decide(run, self.ledger, self.retry_failed)

    def _skipped(self, run: PlannedRun, decision: Decision) -> None:
        state = decision.state
        assert state is not None
        self.done[run.name] = state.status
        if state.status != "completed":
            self.echo(f"skip {run.name}: {state.status} ({state.reason}); --retry-failed retries it")

    def _command(self, runs: tuple[PlannedRun, ...]) -> list[str]:
        """`scaling train` for one run, `scaling train-population` for several."""
        configs = [str(self.ledger.config_path(run.name)) for run in runs]
        outs = [str(self.ledger.run_dir(run.name)) for run in runs]
        if len(runs) > 1:
            return [sys.executable, "-m", "scaling.cli", "train-population", *configs, "--out", *outs]
        # The sweep plans a stable run's branches as runs of their own.
        return [sys.executable, "-m", "scaling.cli", "train", *configs, "--out", *outs, "--no-branches"]

    def _log(self, unit: Population) -> IO[bytes]:
        """The worker's output file; a population's members' own logs name it."""
        log_path = self.ledger.log_path(unit.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if len(unit.runs) > 1:
            for run in unit.runs:
                with self.ledger.log_path(run.name).open("a") as f:
                    f.write(f"trained in population {unit.name} ({unit.shape}): output in {log_path}\n")
        return log_path.open("ab")

    def _spawn(self, members: tuple[tuple[PlannedRun, Claim], ...], slot: Slot) -> None:
        unit = Population(tuple(run for run, _ in members))
        log = self._log(unit)
        start = log.tell()
        env = {**os.environ, **slot.env, "PYTHONUNBUFFERED": "1"}
        parent = os.getpid()
        try:
            process = subprocess.Popen(
                [*self._command(unit.runs), "--no-progress"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=lambda: _child_setup(slot.cpus, parent),
            )
        except BaseException:
            log.close()
            for _, claim in members:
                claim.release()
            raise
        self.active[slot.index] = _Active(members, slot, process, log, start)
        together = {"population": [run.name for run in unit.runs]} if len(unit.runs) > 1 else {}
        where = f" in population {unit.name}" if together else ""
        for run in unit.runs:
            self.ledger.record(run.name, "started", slot=slot.describe(), child=process.pid, **together)
            self.echo(f"start {run.name} ({run.shape}, {run.steps} steps) on {slot.describe()}{where}")

    def _reap(self, *, stopping: bool = False) -> None:
        for index, item in list(self.active.items()):
            code = item.process.poll()
            if code is None:
                continue
            del self.active[index]
            item.log.close()
            with Path(item.log.name).open("rb") as f:
                f.seek(item.log_start)
                tail = f.read().decode(errors="replace")[-4000:]
            seconds = time.time() - item.started
            for run, claim in item.members:
                self._record(run, claim, code, tail, seconds, stopping)

    def _record(
        self, run: PlannedRun, claim: Claim, code: int, tail: str, seconds: float, stopping: bool
    ) -> None:
        """One run's outcome from its own summary (a population exits 0 only when every member completed)."""
        summary = RunDir(self.ledger.run_dir(run.name)).summary()
        outcome, reason = classify_member(run, code, summary, tail)
        if stopping and outcome == "failed":
            outcome, reason = "interrupted", "launcher stopped"
        finish(run, self.ledger, claim, outcome, reason, seconds=seconds)
        if outcome == "busy":
            return
        self.done[run.name] = outcome
        loss = summary.final_val_loss if summary is not None else None
        detail = f"loss {loss:.4f}" if outcome == "completed" and loss is not None else reason
        self.echo(f"{outcome} {run.name}: {detail} ({seconds:.0f} s)")

    def _flops_done(self) -> float:
        flops = sum(run.own_flops for run in self.runs if self.done.get(run.name) == "completed")
        for run in (run for item in self.active.values() for run, _ in item.members):
            rows = RunDir(self.ledger.run_dir(run.name)).metrics()
            if rows:  # a branch's rows start with its stable run's, up to its branch point
                first = run.shared_steps
                flops += run.own_flops * max(rows[-1]["step"] - first, 0) / (run.steps - first)
        return flops

    def _stop_all(self) -> None:
        """SIGTERM every child (the trainer checkpoints and exits), wait, record them as interrupted."""
        for item in self.active.values():
            if item.process.poll() is None:
                item.process.send_signal(signal.SIGTERM)
        deadline = time.time() + STOP_TIMEOUT_SECONDS
        for item in self.active.values():
            try:
                item.process.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                item.process.kill()
                item.process.wait()
        self._reap(stopping=True)
        self.echo("stopped: rerun the same command to resume")
