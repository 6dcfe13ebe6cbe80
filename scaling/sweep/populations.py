"""Which of a phase's runs train together as one population (`scaling train-population`): one process,
one data load and one compile for runs of one model shape, instead of one of each per run.

A pure function of the planned runs: runs that `check_population` accepts together (same model, data,
batch and mesh; they may differ in seed, length and rate schedule) fill populations of at most `cap`
members, in plan order. Cooldown branches and their stable runs stay alone, as does any run that
`check_population` refuses (tracking turned on): a population never waits for another run to finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scaling.errors import UserError
from scaling.sweep.plan import PlannedRun
from scaling.train.grouping import check_population


@dataclass(frozen=True)
class Population:
    """Runs trained by one worker process: one run (the solo path) or several of one shape."""

    runs: tuple[PlannedRun, ...]

    @property
    def name(self) -> str:
        lead = self.runs[0].name
        return lead if len(self.runs) == 1 else f"{lead}+{len(self.runs) - 1}"

    @property
    def shape(self) -> str:
        return self.runs[0].shape

    @property
    def flops(self) -> int:
        """Whole-schedule FLOPs of every member: the work one worker does for it, members in turn."""
        return sum(run.flops for run in self.runs)


def _accepts(runs: list[PlannedRun]) -> bool:
    try:
        check_population([run.config for run in runs], [Path(run.name) for run in runs])
    except UserError:
        return False
    return True


def populations(runs: tuple[PlannedRun, ...], cap: int, workers: int = 1) -> tuple[Population, ...]:
    """The runs split into populations of at most `cap` (1: every run alone), and into at least `workers`
    of them where there are runs enough (members step in turn, so fewer populations than workers would
    leave workers idle), largest work first, so long populations start early and the workers finish close
    together (a stable run before its branches, which have fewer FLOPs)."""
    open_groups: list[list[PlannedRun]] = []
    closed: list[list[PlannedRun]] = []
    for run in runs:
        if cap == 1 or not _accepts([run]):
            closed.append([run])
            continue
        group = next((g for g in open_groups if _accepts([g[0], run])), None)
        if group is None:
            open_groups.append([run])
            continue
        group.append(run)
        if len(group) == cap:
            open_groups.remove(group)
            closed.append(group)
    groups = _spread([*closed, *open_groups], workers)
    found = [Population(tuple(group)) for group in groups]
    return tuple(sorted(found, key=lambda p: -p.flops))


def _spread(groups: list[list[PlannedRun]], workers: int) -> list[list[PlannedRun]]:
    """Split the most work's group in two (members dealt alternately, largest first, so the halves are
    alike) until there are `workers` groups or none has two members."""
    groups = list(groups)
    while len(groups) < workers:
        splittable = [g for g in groups if len(g) > 1]
        if not splittable:
            break
        group = max(splittable, key=lambda g: sum(r.flops for r in g))
        groups.remove(group)
        ordered = sorted(group, key=lambda r: -r.flops)
        groups += [ordered[0::2], ordered[1::2]]
    return groups


def labels(units: tuple[Population, ...]) -> dict[str, str]:
    """Run name -> its population's label for the plan (`p1`, `p2`, ... in start order), for runs that
    share a process."""
    shared = [unit for unit in units if len(unit.runs) > 1]
    return {run.name: f"p{i}" for i, unit in enumerate(shared, 1) for run in unit.runs}


def describe(units: tuple[Population, ...], cap: int) -> list[str]:
    """The plan's lines on grouping: one per population of several runs, then the count of processes."""
    label = labels(units)
    lines = [
        f"population {label[unit.runs[0].name]} ({unit.shape}, {len(unit.runs)} runs): "
        f"{', '.join(run.name for run in unit.runs)}"
        for unit in units
        if len(unit.runs) > 1
    ]
    runs = sum(len(unit.runs) for unit in units)
    how = (
        "each in its own (launch.population: 1)"
        if cap == 1
        else f"up to {cap} runs of one shape share one (launch.population)"
    )
    lines.append(f"{runs} runs in {len(units)} worker processes, {how}")
    return lines
