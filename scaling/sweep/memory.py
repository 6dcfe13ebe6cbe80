"""Whether each planned run fits the sweep's target device, by the memory formula (no compilation, so the
plan stays instant); `scaling train` checks each run again on the device it lands on (compiling its step
where the formula is within a factor 2 of the limit), and refuses it there.

The target: `launch.device_kind`'s memory from the table in `scaling.train.memory_estimate`; for cpu, the
host's available memory split between the workers, each run's `devices_per_run` simulated devices sharing
its part; otherwise unknown (no check).
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.model.sharding import AXES
from scaling.sweep.plan import PlannedRun
from scaling.sweep.spec import LaunchConfig
from scaling.train.memory import host_available_bytes
from scaling.train.memory_estimate import MemoryEstimate, device_memory, human_bytes, run_formula
from scaling.train.memory_fit import what_would_fit

SWEEP_KEYS = {
    "micro": "recipe.micro_batches",
    "remat": "base.model.remat",
    "fsdp": "base.mesh.fsdp",
    "data": "base.mesh.data",
    "batch": "recipe.batch_size",
}


@dataclass(frozen=True)
class Target:
    """`bytes` that `devices` devices of one run share, and what they are (for the plan's lines)."""

    bytes: int
    devices: int
    what: str


def memory_target(launch: LaunchConfig, workers: int) -> Target | None:
    if launch.device_kind:
        known = device_memory(launch.device_kind)
        return None if known is None else Target(known[0], 1, f"one {known[1]}")
    if launch.platform == "cpu":
        available = host_available_bytes()
        if available is None:
            return None
        share = available // workers
        return Target(share, launch.devices_per_run, f"the host's available memory / {workers} worker(s)")
    return None


def run_estimate(run: PlannedRun, launch: LaunchConfig) -> MemoryEstimate:
    return run_formula(run.config, _mesh_shape(run, launch), remat_saves=launch.platform != "cpu")


def _mesh_shape(run: PlannedRun, launch: LaunchConfig) -> dict[str, int]:
    return dict(zip(AXES, run.config.mesh.resolve(launch.devices_per_run), strict=True))


def memory_lines(runs: tuple[PlannedRun, ...], launch: LaunchConfig, goal: Target | None) -> list[str]:
    """A warning per run that would not fit, naming what would; or what the column was compared with."""
    if goal is None:
        return ["memory/dev: not checked: the target device's memory is unknown (set launch.device_kind)"]
    lines = []
    for run in runs:
        estimate = run_estimate(run, launch)
        if estimate.total * goal.devices > goal.bytes:
            fix = what_would_fit(
                run.config,
                _mesh_shape(run, launch),
                goal.bytes,
                goal.devices,
                launch.platform != "cpu",
                keys=SWEEP_KEYS,
            )
            lines.append(
                f"warning: run {run.name} may not fit: it needs {estimate.describe()}, more than "
                f"{human_bytes(goal.bytes)} for its {goal.devices} device(s) ({goal.what}); {fix}"
            )
    fits = "every run fits" if not lines else f"{len(lines)} run(s) may not fit"
    return [
        f"memory/dev: the step's peak per device by formula; {fits} in {human_bytes(goal.bytes)} "
        f"({goal.what}, {goal.devices} device(s) per run)",
        *lines,
    ]
