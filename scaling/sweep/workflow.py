"""A sweep from file to results: load and plan it, run the ladder, then the targets it sizes.

Shared by `scaling sweep ...` and `scaling demo`. Targets exist only once the ladder is complete and
`targets.json` has been written from its fit, so `Sweep.runs()` is the ladder alone before that.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import UserError
from scaling.fitting import load_table
from scaling.fitting.table import RunTable
from scaling.sweep import targets
from scaling.sweep.collect import write_results
from scaling.sweep.estimate import Startup, Throughput, format_duration, run_throughput, startup
from scaling.sweep.launch import LocalLauncher, make_slots
from scaling.sweep.ledger import Ledger
from scaling.sweep.memory import memory_lines, memory_target, run_estimate
from scaling.sweep.plan import PlannedRun, format_count, plan
from scaling.sweep.populations import describe, labels, populations
from scaling.sweep.spec import SweepSpec, load_sweep
from scaling.sweep.status import RunState, format_table, run_state
from scaling.train.memory_estimate import human_bytes


@dataclass(frozen=True)
class Sweep:
    spec: SweepSpec
    ladder: tuple[PlannedRun, ...]
    ledger: Ledger

    @property
    def results_path(self) -> Path:
        return self.ledger.sweep_dir / "results.csv"

    def target_runs(self) -> tuple[PlannedRun, ...]:
        """The planned targets, () until their sizes have been chosen (targets.json)."""
        path = targets.plan_path(self.ledger)
        if self.spec.targets is None or not path.exists():
            return ()
        return targets.target_runs(self.spec, targets.read_choices(self.spec, path))

    def runs(self) -> tuple[PlannedRun, ...]:
        return (*self.ladder, *self.target_runs())

    def tables(self, params: str) -> tuple[RunTable, RunTable]:
        """results.csv rewritten, then read as (completed ladder runs, completed targets), parameters
        counted as `params` says."""
        path, _ = write_results(self.runs(), self.ledger, self.spec.recipe.name)
        table = load_table(path, params=params)
        done = [r.name for r in self.target_runs() if run_state(r, self.ledger).status == "completed"]
        return table.named(r.name for r in self.ladder), table.named(done)


def load(args: argparse.Namespace) -> Sweep:
    spec = load_sweep(args.sweep)
    out = Path(args.out) if args.out else Path("runs") / spec.name
    if out.exists() and not out.is_dir():
        raise UserError(f"sweep directory {out} exists and is not a directory: choose another --out")
    return Sweep(spec, plan(spec), Ledger(out))


def worker_count(args: argparse.Namespace, spec: SweepSpec) -> int:
    count = getattr(args, "workers", None)
    count = spec.launch.workers if count is None else count
    if count < 1:
        raise UserError(f"--workers must be >= 1, got {count}")
    return count


def run_local(sweep: Sweep, workers: int, retry_failed: bool, progress: bool) -> list[RunState]:
    """Train the ladder, then (if the sweep has targets and the ladder completed) choose and train them;
    results.csv is rewritten after each phase. Returns the state of every run, ladder first."""
    slots = make_slots(sweep.spec.launch, workers)

    def phase(runs: tuple[PlannedRun, ...], smallest_first: bool = False) -> list[RunState]:
        launcher = LocalLauncher(
            runs,
            sweep.ledger,
            slots,
            population=sweep.spec.launch.population,
            retry_failed=retry_failed,
            progress=progress,
            smallest_first=smallest_first,
        )
        states = launcher.run()
        print(format_table(states, list(runs)), flush=True)
        return states

    states = phase(sweep.ladder)
    write_results(sweep.runs(), sweep.ledger, sweep.spec.recipe.name)
    if sweep.spec.targets is None:
        return states
    if not all(s.status == "completed" for s in states):
        print("targets wait for the whole ladder to complete", flush=True)
        return states
    targets.load_or_choose(sweep.spec, sweep.ledger, sweep.ladder, sweep.results_path)
    chosen = sweep.target_runs()
    print(f"targets sized by the ladder's {sweep.spec.targets.law} fit ({targets.fit_path(sweep.ledger)}):")
    for line in targets.repeated_data(sweep.ladder, chosen, sweep.ledger):
        print(line, flush=True)
    states += phase(chosen, smallest_first=True)
    write_results(sweep.runs(), sweep.ledger, sweep.spec.recipe.name)
    return states


def plan_table(sweep: Sweep, workers: int) -> str:
    """The plan command's table: every known run with N, D, C, shape, steps, batch, lr, estimated time, its
    population and memory per device; then the populations, the totals, and a warning for each run that
    would not fit the target device."""
    from scaling.train.run_dir import RunDir

    runs = sweep.runs()
    summaries = [s for s in (RunDir(sweep.ledger.run_dir(r.name)).summary() for r in runs) if s is not None]
    throughput = run_throughput(sweep.spec.launch, workers, summaries)
    launch = sweep.spec.launch
    cap = launch.population
    units = (*populations(sweep.ladder, cap, workers), *populations(sweep.target_runs(), cap, workers))
    label = labels(units)
    header = (
        f"{'name':<24} {'N':>7} {'D':>7} {'C':>9} {'shape':<16} {'steps':>6} {'batch':>5} {'lr':>8} "
        f"{'est.time':>8} {'pop':>4} {'memory/dev':>10}"
    )
    lines = [
        f"sweep {sweep.spec.name} (recipe {sweep.spec.recipe.name}): {len(runs)} runs in "
        f"{sweep.ledger.sweep_dir}",
        header,
        "-" * len(header),
    ]
    for run in runs:
        branch = f"  branch of {run.branch_of}" if run.branch_of else ""
        seconds = throughput.seconds(run.own_flops, run.config.model.flops_per_token)
        lines.append(
            f"{run.name:<24} {format_count(run.params_nonembedding):>7} {format_count(run.tokens):>7} "
            f"{run.flops:>9.3g} {run.shape:<16} {run.steps:>6} {run.config.train.batch_size:>5} "
            f"{run.config.optim.lr:>8.2e} "
            f"{format_duration(seconds):>8} {label.get(run.name, '-'):>4} "
            f"{human_bytes(run_estimate(run, launch).total):>10}{branch}"
        )
    lines += _pending_targets(sweep, throughput)
    lines += describe(units, cap)
    lines += _total_lines(sweep, throughput, startup(summaries), len(units) + len(_pending(sweep)), workers)
    lines += memory_lines(runs, launch, memory_target(launch, workers))
    return "\n".join(lines)


def _total_lines(sweep: Sweep, throughput: Throughput, start: Startup, processes: int, workers: int):
    """What C means, and the time estimate: step time plus one start-up per worker process."""
    runs = sweep.runs()
    steps = sum(throughput.seconds(r.own_flops, r.config.model.flops_per_token) for r in runs)
    steps += _pending_seconds(sweep, throughput)
    total = steps + start.seconds * processes
    return [
        f"N: non-embedding parameters; D: tokens; C: exact training FLOPs of the run's whole schedule "
        f"({_compute_line(runs)}). Estimated time = the run's own FLOPs / throughput, {throughput.how}.",
        f"Step time in all {format_duration(steps)}, plus start-up ({start.how}) x {processes} worker "
        f"processes: {format_duration(total)}, about {format_duration(total / workers)} of wall time on "
        f"{workers} worker(s), plus evaluation and checkpoints.",
    ]


def _compute_line(runs: tuple[PlannedRun, ...]) -> str:
    whole, own = sum(r.flops for r in runs), sum(r.own_flops for r in runs)
    if own == whole:
        return f"{whole:.3g} in all"
    return (
        f"{own:.3g} trained in all with cooldown branches, which share their stable run's first steps; "
        f"{whole:.3g} without branching, {own / whole:.0%} of it"
    )


def _pending(sweep: Sweep):
    if sweep.spec.targets is None or sweep.target_runs():
        return []
    return list(sweep.spec.targets.runs)


def _pending_targets(sweep: Sweep, throughput) -> list[str]:
    lines = []
    for target in _pending(sweep):
        flops = target.flops
        if flops is None:
            lines.append(f"target (N {target.params:.3g}, D {target.tokens:.3g}): as given, after the ladder")
            continue
        when = format_duration(throughput.seconds(flops))
        law = sweep.spec.targets.law
        lines.append(f"target (C {flops:.3g}): sized by the {law} fit once the ladder is done, ~{when}")
    return lines


def _pending_seconds(sweep: Sweep, throughput) -> float:
    return sum(throughput.seconds(t.flops) for t in _pending(sweep) if t.flops is not None)
