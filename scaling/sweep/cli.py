"""`scaling sweep plan|run|status|collect SWEEP.yaml` and `scaling demo`."""

from __future__ import annotations

import argparse
from pathlib import Path

from scaling.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="plan, run, monitor and collect a sweep of runs",
        description="A sweep file (see experiments/cpu_isoflop.yaml) expands into runs with deterministic "
        "names under --out; every command is idempotent.",
    )
    commands = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)
    for name, func, help_text in (
        ("plan", _plan, "print the runs (N, tokens, FLOPs, shape, steps, estimated time); run nothing"),
        ("run", _run, "run every unfinished run (skip completed, resume interrupted), then collect"),
        ("status", _status, "table of each run's status, progress and loss"),
        ("collect", _collect, "write results.csv (one row per run) for the fitter"),
    ):
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("sweep", help="sweep YAML file")
        _add_out(parser)
        parser.set_defaults(func=func)
        if name in ("plan", "run"):
            parser.add_argument("--workers", type=int, help="runs at once (default: launch.workers)")
        if name == "run":
            _add_run_options(parser)
    demo = subparsers.add_parser(
        "demo",
        help="the CPU IsoFLOP sweep end to end: plan, run, collect, fit, plot, predict (resumable)",
        description="Plan and run experiments/cpu_isoflop.yaml, collect results.csv, fit a scaling law and "
        "predict the loss and compute-optimal size at 1000x the largest budget. Rerun to resume.",
    )
    demo.add_argument("--sweep", default=str(default_demo_sweep()), help="sweep file")
    _add_out(demo)
    demo.add_argument("--workers", type=int, help="runs at once (default: launch.workers)")
    demo.add_argument("--retry-failed", action="store_true", help="retry failed and diverged runs")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)


def default_demo_sweep() -> Path:
    return Path(__file__).resolve().parents[2] / "experiments" / "cpu_isoflop.yaml"


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="sweep directory (default: runs/<sweep name>)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retry-failed", action="store_true", help="retry failed and diverged runs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--launcher", choices=("local", "slurm"), default="local", help="local processes or a SLURM array"
    )
    parser.add_argument(
        "--cluster",
        choices=("slurm", "local", "debug"),
        help="submitit cluster for --launcher slurm (default: detected; local runs tasks as processes)",
    )
    parser.add_argument("--wait", action="store_true", help="with --launcher slurm: wait for the jobs")


def load(args: argparse.Namespace):
    from scaling.sweep.ledger import Ledger
    from scaling.sweep.plan import plan
    from scaling.sweep.spec import load_sweep

    spec = load_sweep(args.sweep)
    runs = plan(spec)
    ledger = Ledger(Path(args.out) if args.out else Path("runs") / spec.name)
    return spec, runs, ledger


def worker_count(args: argparse.Namespace, spec) -> int:
    count = getattr(args, "workers", None) or spec.launch.workers
    if count < 1:
        raise UserError(f"--workers must be >= 1, got {count}")
    return count


def plan_table(spec, runs, ledger, workers: int) -> str:
    from scaling.sweep.estimate import format_duration, run_throughput
    from scaling.sweep.plan import format_count

    summaries = [s for s in (_summary(ledger, r.name) for r in runs) if s is not None]
    throughput = run_throughput(spec.launch, workers, summaries)
    header = f"{'name':<22} {'N':>7} {'D':>7} {'C':>9} {'shape':<16} {'steps':>6} {'lr':>8} {'est.time':>8}"
    lines = [
        f"sweep {spec.name} (recipe {spec.recipe.name}): {len(runs)} runs in {ledger.sweep_dir}",
        header,
        "-" * len(header),
    ]
    for run in runs:
        lines.append(
            f"{run.name:<22} {format_count(run.params_nonembedding):>7} {format_count(run.tokens):>7} "
            f"{run.flops:>9.3g} {run.shape:<16} {run.steps:>6} {run.config.optim.lr:>8.2e} "
            f"{format_duration(throughput.seconds(run.flops)):>8}"
        )
    total = sum(throughput.seconds(r.flops) for r in runs)
    lines.append(
        f"N: non-embedding parameters; D: tokens; C: exact training FLOPs ({sum(r.flops for r in runs):.3g} "
        f"in all). Estimated time = C / throughput, {throughput.how}."
    )
    lines.append(
        f"Step time in all {format_duration(total)}, about {format_duration(total / workers)} of wall "
        f"time on {workers} worker(s), plus compilation, evaluation and checkpoints per run."
    )
    return "\n".join(lines)


def _summary(ledger, name: str) -> dict | None:
    from scaling.run_dir import RunDir

    return RunDir(ledger.run_dir(name)).summary()


def _plan(args: argparse.Namespace) -> int:
    spec, runs, ledger = load(args)
    print(plan_table(spec, runs, ledger, worker_count(args, spec)))
    return 0


def _run(args: argparse.Namespace) -> int:
    spec, runs, ledger = load(args)
    if args.launcher == "slurm":
        return _run_slurm(args, spec, runs, ledger)
    from scaling.sweep.collect import write_results
    from scaling.sweep.launch import LocalLauncher, make_slots
    from scaling.sweep.status import format_table

    slots = make_slots(spec.launch, worker_count(args, spec))
    launcher = LocalLauncher(
        runs, ledger, slots, retry_failed=args.retry_failed, progress=not args.no_progress
    )
    states = launcher.run()
    print(format_table(states, list(runs)))
    path, _ = write_results(runs, ledger, spec.recipe.name)
    print(f"wrote {path}")
    return 0 if all(s.status == "completed" for s in states) else 1


def _run_slurm(args: argparse.Namespace, spec, runs, ledger) -> int:
    from scaling.sweep.slurm import submit

    jobs = submit(runs, ledger, spec.slurm, retry_failed=args.retry_failed, cluster=args.cluster)
    if not jobs:
        print("nothing to submit: every run is completed (or failed/diverged; use --retry-failed)")
        return 0
    print(f"submitted {len(jobs)} tasks: {', '.join(job.job_id for job in jobs)}; logs in {ledger.root}")
    if not args.wait:
        print(f"follow with: scaling sweep status {args.sweep}" + (f" --out {args.out}" if args.out else ""))
        return 0
    results = [job.result() for job in jobs]
    print(", ".join(f"{t}" for t in results))
    return 0 if all(r == "completed" for r in results) else 1


def _status(args: argparse.Namespace) -> int:
    from scaling.sweep.status import format_table, run_state

    _, runs, ledger = load(args)
    print(format_table([run_state(r, ledger) for r in runs], list(runs)))
    return 0


def _collect(args: argparse.Namespace) -> int:
    from scaling.sweep.collect import write_results

    spec, runs, ledger = load(args)
    path, rows = write_results(runs, ledger, spec.recipe.name)
    done = sum(r["status"] == "completed" for r in rows)
    print(f"wrote {path}: {len(rows)} runs, {done} completed")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from scaling.sweep.demo import run_demo

    return run_demo(args)
