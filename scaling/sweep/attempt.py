"""One attempt at one run, shared by every launcher: decide under the run's claim, then record the outcome.

The decision and every record about a run happen while holding its claim, so two launchers (local
processes, SLURM array tasks, or one of each) never start the same run, and a run's 'completed' event is
written exactly once: by the launcher whose trainer finished it, or, if that launcher died before writing
it, by the next one that finds the finished summary ("observed").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from scaling import stops
from scaling.errors import RunInUse
from scaling.records import RunSummary
from scaling.sweep.ledger import Claim, Ledger, trainer_lock_free
from scaling.sweep.plan import PlannedRun
from scaling.sweep.status import RETRYABLE, RunState, is_completed, run_state
from scaling.train.run_dir import RunDir

Action = Literal["start", "skip", "wait"]
Outcome = Literal["completed", "diverged", "failed", "interrupted", "busy"]


@dataclass(frozen=True)
class Decision:
    action: Action
    claim: Claim | None = None
    state: RunState | None = None
    reason: str = ""  # why it waits


def decide(run: PlannedRun, ledger: Ledger, retry_failed: bool) -> Decision:
    """Claim the run and say whether to start it (keeping the claim), skip it, or wait for its holder (or,
    for a cooldown branch, for its stable run to complete)."""
    if run.branch_of is not None:
        waiting = _stable_run_pending(run, ledger)
        if waiting is not None:
            return waiting
    claim = ledger.try_claim(run.name)
    if claim is None:
        return Decision("wait", reason="another launcher holds it")
    state = run_state(run, ledger, probe_claim=False)
    if state.status == "completed":
        if not any(e["event"] == "completed" for e in ledger.events(run.name)):
            ledger.record(run.name, "completed", observed=True)
        claim.release()
        return Decision("skip", state=state)
    if state.status in RETRYABLE and not retry_failed:
        claim.release()
        return Decision("skip", state=state)
    if not trainer_lock_free(ledger.run_dir(run.name)):
        claim.release()
        return Decision("wait", reason="a trainer outside this sweep's launchers holds its directory")
    ledger.clear_failure(run.name)
    return Decision("start", claim=claim, state=state)


def _stable_run_pending(run: PlannedRun, ledger: Ledger) -> Decision | None:
    """Wait until the branch's stable run completes; skip the branch if that run failed or diverged (by
    the ledger or by its own summary). A stable run that stopped interrupted is the launcher's to see."""
    assert run.branch_of is not None
    stable = RunDir(ledger.run_dir(run.branch_of)).summary()
    if completed(stable):
        return None
    failure = ledger.failure(run.branch_of)
    status = failure["status"] if failure else None
    if status is None and stable is not None and stable.status in RETRYABLE:
        status = stable.status
    if status is None:
        return Decision("wait", reason=f"its stable run {run.branch_of} has not completed")
    return skip_branch(run, ledger, f"its stable run {run.branch_of} {status}")


def completed(summary: RunSummary | None) -> bool:
    """Whether a stable run's summary lets its branches start (they check its length themselves)."""
    return summary is not None and summary.completed


def stable_run_completed(run: PlannedRun, ledger: Ledger) -> bool:
    assert run.branch_of is not None
    return completed(RunDir(ledger.run_dir(run.branch_of)).summary())


def skip_branch(run: PlannedRun, ledger: Ledger, reason: str) -> Decision:
    """A branch that cannot start (its stable run did not complete), shown as failed with `reason`."""
    state = run_state(run, ledger)
    return Decision("skip", state=dataclasses.replace(state, status="failed", reason=reason))


# `scaling.cli`'s exit codes for Ctrl-C and SIGTERM outside the training loop (128 + signal number).
STOPPED_BY_SIGNAL = tuple(128 + s for s in stops.STOP_SIGNALS)


def classify_exit(run: PlannedRun, code: int, summary: dict | None, log_tail: str) -> tuple[Outcome, str]:
    """Outcome of a `scaling train` process from its exit code (0 completed, 1 diverged or interrupted,
    2 a user error, 75 the run directory locked by another trainer, 130/143 stopped during start-up), its
    fresh summary and its log's end."""
    if code == 0 and is_completed(run, summary):
        return "completed", ""
    if code == 1 and summary is not None and summary.status in ("diverged", "interrupted"):
        return summary.status, f"{summary.status} at step {summary.steps}"
    if code == RunInUse.exit_code:
        return "busy", ""
    if code in STOPPED_BY_SIGNAL:
        return "interrupted", f"stopped during start-up (exit code {code})"
    if code < 0:
        return "failed", f"killed by signal {-code}"
    return "failed", f"exit code {code}: {last_error_line(log_tail)}"


def classify_member(
    run: PlannedRun, code: int, summary: RunSummary | None, log_tail: str
) -> tuple[Outcome, str]:
    """`classify_exit` for a run trained alone or in a population: a member whose own summary says it
    completed did, whatever the process's exit code (non-zero when another member did not complete)."""
    if is_completed(run, summary):
        return "completed", ""
    return classify_exit(run, code, summary, log_tail)


def last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:300]


def finish(run: PlannedRun, ledger: Ledger, claim: Claim, outcome: Outcome, reason: str, **fields) -> None:
    """Record the attempt's outcome (failures with their reason), then release the claim."""
    try:
        if outcome in RETRYABLE:
            ledger.record_failure(run.name, outcome, reason)
        if outcome != "busy":
            ledger.record(run.name, outcome, reason=reason, **fields)
    finally:
        claim.release()
