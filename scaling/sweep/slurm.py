"""SLURM launcher through submitit: one array task per run that still needs work.

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

from scaling.errors import RunInUse, UserError
from scaling.sweep.attempt import decide, finish, stable_run_completed
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import PlannedRun
from scaling.sweep.spec import SlurmConfig
from scaling.sweep.status import is_completed, run_state


@dataclass(frozen=True)
class Task:
    """What one array task needs: the planned run, the sweep directory, and the retry policy."""

    run: PlannedRun
    sweep_dir: str
    retry_failed: bool


def run_task(task: Task) -> str:
    """Claim, train in-process and record; returns the run's status after this task."""
    from scaling.train.loop import train

    ledger = Ledger(Path(task.sweep_dir))
    decision = decide(task.run, ledger, task.retry_failed)
    if decision.action != "start":
        return "busy" if decision.action == "wait" else decision.state.status  # type: ignore[union-attr]
    assert decision.claim is not None
    ledger.record(task.run.name, "started", slot="slurm task")
    try:
        summary = train(task.run.config, ledger.run_dir(task.run.name), progress=False)
    except RunInUse:
        finish(task.run, ledger, decision.claim, "busy", "")
        return "busy"
    except UserError as err:
        finish(task.run, ledger, decision.claim, "failed", f"error: {err}")
        return "failed"
    except Exception as err:
        finish(task.run, ledger, decision.claim, "failed", f"{type(err).__name__}: {err}"[:300])
        raise
    if is_completed(task.run, summary):
        finish(task.run, ledger, decision.claim, "completed", "")
    else:
        status = summary.status
        finish(task.run, ledger, decision.claim, status, f"{status} at step {summary.steps}")
    return summary.status


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
) -> list[Any]:
    """Submit one job array over the runs not yet finished; returns the submitit jobs."""
    submitit, RunTask = _checkpointable_task()
    todo = []
    for run in runs:
        ledger.write_config(run.config)
        status = run_state(run, ledger).status
        if status == "completed" or (status in ("failed", "diverged") and not retry_failed):
            continue
        if run.branch_of is not None and not stable_run_completed(run, ledger):
            continue  # a task would only wait for it: submitted by the rerun after the stable run is done
        todo.append(Task(run, str(ledger.sweep_dir.absolute()), retry_failed))
    if not todo:
        return []
    executor = submitit.AutoExecutor(folder=ledger.root / "submitit" / "%j", cluster=cluster)
    parameters = slurm.parameters()
    if executor.cluster != "slurm":
        parameters = {k: v for k, v in parameters.items() if not k.startswith("slurm_")}
    executor.update_parameters(name=ledger.sweep_dir.name, **parameters)
    return executor.map_array(RunTask(), todo)
