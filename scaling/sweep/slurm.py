"""SLURM launcher through submitit: one array task per run that still needs work, or per population of
runs of one shape (trained together in the task, as the local launcher's workers do).

Each task makes the same claim-guarded decision as the local launcher and trains in-process, so a task
array and local launchers can work on one sweep together. Tasks are checkpointable: on preemption or
timeout submitit requeues them and the trainer resumes from the run's last checkpoint (SIGTERM from SLURM
makes the trainer checkpoint first). `cluster="local"` runs the same tasks as local processes (tests).

One large run across hosts (a TPU pod slice or multi-node GPUs) is not a sweep task but one `scaling
train` per host, joined through jax.distributed:
    scaling train RUN.yaml --out DIR --coordinator HOST0:PORT --num-processes N --process-id i
or `--coordinator auto` on TPU pods and under SLURM (`srun --ntasks-per-node=1 scaling train ...`), where
JAX reads the topology from the environment. Process 0 writes the run directory and takes its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.errors import RunFailed, RunInUse, UserError
from scaling.records import RunSummary
from scaling.sweep.attempt import Outcome, decide, finish, stable_run_completed
from scaling.sweep.ledger import Claim, Ledger
from scaling.sweep.plan import PlannedRun
from scaling.sweep.populations import populations
from scaling.sweep.spec import SlurmConfig
from scaling.sweep.status import is_completed, run_state
from scaling.train.run_dir import RunDir


@dataclass(frozen=True)
class Task:
    """What one array task needs: its planned runs (one, or a population's members), the sweep directory,
    and the retry policy."""

    runs: tuple[PlannedRun, ...]
    sweep_dir: str
    retry_failed: bool


def run_task(task: Task) -> str:
    """Claim each run, train the claimed ones in-process (together when several) and record each;
    returns "completed" when every run is, else each other run's "name: status"."""
    ledger = Ledger(Path(task.sweep_dir))
    statuses: dict[str, str] = {}
    members = []
    for run in task.runs:
        decision = decide(run, ledger, task.retry_failed)
        if decision.action == "start":
            assert decision.claim is not None
            ledger.record(run.name, "started", slot="slurm task")
            members.append((run, decision.claim))
        else:
            statuses[run.name] = "busy" if decision.action == "wait" else decision.state.status  # type: ignore[union-attr]
    if members:
        statuses.update(_train(members, ledger))
    others = [f"{name}: {status}" for name, status in statuses.items() if status != "completed"]
    return ", ".join(others) or "completed"


def _train(members: list[tuple[PlannedRun, Claim]], ledger: Ledger) -> dict[str, str]:
    """Train the claimed runs (`train`, or `train_population` for several) and record each one's outcome
    from its own summary; an error before training began is every member's."""
    from scaling.train.loop import train
    from scaling.train.population import train_population

    runs = [run for run, _ in members]
    dirs = [ledger.run_dir(run.name) for run in runs]
    error: tuple[Outcome, str] | None = None
    failed_reason = ""
    try:
        if len(runs) == 1:
            train(runs[0].config, dirs[0], progress=False)
        else:
            train_population([run.config for run in runs], dirs, progress=False)
    except RunInUse:
        error = ("busy", "")
    except RunFailed as err:  # every member's summary is written; the failed ones say so
        failed_reason = f"error: {err}"
    except UserError as err:
        error = ("failed", f"error: {err}")
    except Exception as err:
        for run, claim in members:
            finish(run, ledger, claim, "failed", f"{type(err).__name__}: {err}"[:300])
        raise
    statuses = {}
    for run, claim in members:
        summary = RunDir(ledger.run_dir(run.name)).summary()
        outcome, reason = ("completed", "") if is_completed(run, summary) else error or _stopped(summary)
        if outcome == "failed" and failed_reason and error is None:
            reason = failed_reason
        finish(run, ledger, claim, outcome, reason)
        statuses[run.name] = outcome
    return statuses


def _stopped(summary: RunSummary | None) -> tuple[Outcome, str]:
    """The outcome of a run that ended before its last step, from the summary it wrote."""
    if summary is None:
        return "failed", "no summary written"
    return summary.status, f"{summary.status} at step {summary.steps}"  # type: ignore[return-value]


def _checkpointable_task():
    try:
        import submitit
    except ImportError:
        raise UserError("the SLURM launcher needs submitit: pip install 'scaling[slurm]'") from None

    class RunTask(submitit.helpers.Checkpointable):
        """Requeued by submitit on preemption/timeout; the trainer resumes from the last checkpoint."""

        def __call__(self, task: Task) -> str:
            return run_task(task)

    return submitit, RunTask


def submit(
    runs: tuple[PlannedRun, ...],
    ledger: Ledger,
    slurm: SlurmConfig,
    *,
    retry_failed: bool = False,
    cluster: str | None = None,
    population: int = 1,
) -> list[Any]:
    """Submit one job array over the runs not yet finished, one task per population of at most
    `population` runs of one shape (`scaling.sweep.populations`); returns the submitit jobs."""
    submitit, RunTask = _checkpointable_task()
    todo = []
    for run in runs:
        ledger.write_config(run.config)
        status = run_state(run, ledger).status
        if status == "completed" or (status in ("failed", "diverged") and not retry_failed):
            continue
        if run.branch_of is not None and not stable_run_completed(run, ledger):
            continue  # a task would only wait for it: submitted by the rerun after the stable run is done
        todo.append(run)
    sweep_dir = str(ledger.sweep_dir.absolute())
    tasks = [Task(unit.runs, sweep_dir, retry_failed) for unit in populations(tuple(todo), population)]
    if not tasks:
        return []
    executor = submitit.AutoExecutor(folder=ledger.root / "submitit" / "%j", cluster=cluster)
    parameters = slurm.parameters()
    if executor.cluster != "slurm":
        parameters = {k: v for k, v in parameters.items() if not k.startswith("slurm_")}
    executor.update_parameters(name=ledger.sweep_dir.name, **parameters)
    return executor.map_array(RunTask(), tasks)
