"""How long a planned run should take: its exact FLOPs over a per-run throughput, with the assumption stated.

Before any run of the sweep has finished, the throughput is the device peak (the data-sheet table for
`launch.device_kind`, else this machine's measured matmul peak, split between CPU workers) times
`launch.assumed_mfu`. Once runs have finished, it is the median FLOP/s they measured (step time only:
compilation, evaluation and checkpoints are not included), per model shape for the shapes that have
finished runs (small models run far below the machine's peak, large ones closer to it).

Start-up (imports, data loading, compilation, the first step) is paid once per worker process, which is
once per population of runs (`scaling.sweep.populations`): the median measured by finished runs, else an
assumed figure.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from scaling.errors import UserError
from scaling.records import RunSummary
from scaling.sweep.spec import LaunchConfig


@dataclass(frozen=True)
class Throughput:
    """FLOP/s of a run's steps: measured for a shape (keyed by its FLOPs per token), else the default."""

    flops_per_second: float
    how: str
    per_shape: dict[int, float] = field(default_factory=dict)

    def seconds(self, flops: float, flops_per_token: int | None = None) -> float:
        return flops / self.per_shape.get(flops_per_token, self.flops_per_second)


def run_throughput(launch: LaunchConfig, workers: int, summaries: list[RunSummary]) -> Throughput:
    finished = [s for s in summaries if s.completed and s.tokens_per_second]
    if finished:
        by_shape: dict[int, list[float]] = {}
        for s in finished:
            by_shape.setdefault(s.flops_per_token, []).append(s.tokens_per_second * s.flops_per_token)
        value = statistics.median(v for values in by_shape.values() for v in values)
        per_shape = {shape: statistics.median(values) for shape, values in by_shape.items()}
        how = (
            f"measured per shape for the {len(per_shape)} shapes of {len(finished)} finished runs, else "
            f"their median {value:.3g} FLOP/s"
        )
        return Throughput(value, how, per_shape)
    from scaling.train.mfu import measured_peak, peak_flops_per_device, table_peak

    if launch.device_kind:
        peak = table_peak(launch.device_kind)
        if peak is None:
            raise UserError(
                f"launch.device_kind {launch.device_kind!r} is not in scaling.train.mfu's peak table"
            )
        per_run, source = peak.value * launch.devices_per_run, peak.source
    elif launch.platform == "cpu":
        peak = measured_peak()
        cores = len(os.sched_getaffinity(0))
        share = (cores // workers or cores / workers) / cores  # more workers than cores share them
        per_run, source = peak.value * share, f"{peak.source}, x{share:.2g} (cores per worker)"
    else:
        peak = peak_flops_per_device()
        per_run, source = peak.value * launch.devices_per_run, peak.source
    value = per_run * launch.assumed_mfu
    return Throughput(
        value, f"assumed MFU {launch.assumed_mfu:g} x peak {per_run:.3g} FLOP/s per run ({source})"
    )


# Start-up of one `scaling train` process on a loaded 2-core CPU, before any run measured its own:
# ladder runs spent 25-46 s (issue 11), tiny ones under 10 s.
ASSUMED_STARTUP_SECONDS = 20.0


@dataclass(frozen=True)
class Startup:
    """Seconds one worker process spends before its first step, and where the figure comes from."""

    seconds: float
    how: str


def startup(summaries: list[RunSummary]) -> Startup:
    measured = [s.startup_seconds for s in summaries if s.startup_seconds]
    if not measured:
        return Startup(ASSUMED_STARTUP_SECONDS, f"assumed {ASSUMED_STARTUP_SECONDS:.0f} s")
    value = statistics.median(measured)
    return Startup(value, f"{value:.0f} s, the median of {len(measured)} runs' measured start-up")


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
