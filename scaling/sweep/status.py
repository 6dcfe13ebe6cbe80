"""What state each run of a sweep is in, read only from files (run directories and the ledger).

A run counts as completed only when its summary says so *for the planned number of steps*; anything
else that was started is interrupted (resumable), failed or diverged (retried only on request), or
running (a launcher holds its claim).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scaling.records import RunSummary
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import PlannedRun
from scaling.train.run_dir import RunDir

Status = Literal["completed", "running", "failed", "diverged", "interrupted", "pending"]
RETRYABLE = ("failed", "diverged")


@dataclass(frozen=True)
class RunState:
    name: str
    status: Status
    step: int
    steps: int
    summary: RunSummary | None
    reason: str = ""

    @property
    def loss(self) -> float | None:
        return None if self.summary is None else self.summary.final_val_loss


def is_completed(run: PlannedRun, summary: RunSummary | None) -> bool:
    return summary is not None and summary.completed and summary.steps == run.steps


def run_state(run: PlannedRun, ledger: Ledger, *, probe_claim: bool = True) -> RunState:
    """The run's state; `probe_claim=False` when the caller itself holds the claim."""
    run_dir = RunDir(ledger.run_dir(run.name))
    summary = run_dir.summary()
    rows = run_dir.metrics()
    step = rows[-1]["step"] if rows else 0

    def state(status: Status, reason: str = "") -> RunState:
        return RunState(run.name, status, step, run.steps, summary, reason)

    if is_completed(run, summary):
        step = run.steps
        return state("completed")
    if probe_claim and ledger.is_claimed(run.name):
        return state("running")
    failure = ledger.failure(run.name)
    if failure is not None:
        return state(failure["status"], failure["reason"])
    if summary is not None and summary.status == "diverged":
        return state("diverged", f"loss or gradient norm not finite by step {summary.steps}")
    if summary is not None and summary.status == "failed":
        return state("failed", f"stopped by a failed write at step {summary.steps} (see its train.log)")
    if run_dir.config_path.exists():
        return state("interrupted")
    return state("pending")


def format_table(states: list[RunState], runs: list[PlannedRun]) -> str:
    """Fixed-width table: name, status, progress, validation loss, train loss, reason."""
    header = f"{'name':<22} {'status':<11} {'progress':>13} {'loss':>8} {'train':>8}  reason"
    lines = [header, "-" * len(header)]
    for st, run in zip(states, runs, strict=True):
        loss = f"{st.loss:.4f}" if st.status == "completed" and st.loss is not None else "-"
        train = st.summary.final_train_loss if st.summary is not None else None
        train_text = f"{train:.4f}" if st.status == "completed" and train is not None else "-"
        progress = f"{st.step}/{run.steps} {100 * st.step / run.steps:3.0f}%"
        lines.append(f"{st.name:<22} {st.status:<11} {progress:>13} {loss:>8} {train_text:>8}  {st.reason}")
    counts: dict[str, int] = {}
    for st in states:
        counts[st.status] = counts.get(st.status, 0) + 1
    lines.append(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return "\n".join(lines)
