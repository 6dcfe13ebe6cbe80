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
        ("plan", _plan, "print the runs (N, tokens, FLOPs, shape, steps, batch, est. time); run nothing"),
        ("run", _run, "run every unfinished run (skip completed, resume interrupted), then collect"),
        ("status", _status, "table of each run's status, progress and loss"),
        ("collect", _collect, "write results.csv (one row per run) for the fitter"),
        ("validate", _validate, "fit every law on the ladder, score its predictions of the targets"),
    ):
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("sweep", help="sweep YAML file")
        _add_out(parser)
        parser.set_defaults(func=func)
        if name in ("plan", "run"):
            parser.add_argument("--workers", type=int, help="runs at once (default: launch.workers)")
        if name == "run":
            _add_run_options(parser)
        if name == "validate":
            parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
            parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap refits per law")
            parser.add_argument(
                "--confidence", type=float, default=0.8, help="interval coverage (default 0.8)"
            )
    demo = subparsers.add_parser(
        "demo",
        help="a small CPU ladder end to end: train it, size and train a 10x target, score the prediction",
        description="Run the ladder of experiments/cpu_demo.yaml, size its target (10x the largest budget) "
        "from the ladder's fit, train it, then fit every law on the ladder and compare its prediction with "
        "the trained target. Rerun to resume.",
    )
    demo.add_argument("--sweep", default=str(default_demo_sweep()), help="sweep file")
    _add_out(demo)
    demo.add_argument("--workers", type=int, help="runs at once (default: launch.workers)")
    demo.add_argument("--retry-failed", action="store_true", help="retry failed and diverged runs")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)


def default_demo_sweep() -> Path:
    return Path(__file__).resolve().parents[2] / "experiments" / "cpu_demo.yaml"


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


def _plan(args: argparse.Namespace) -> int:
    from scaling.sweep.workflow import load, plan_table, worker_count

    sweep = load(args)
    print(plan_table(sweep, worker_count(args, sweep.spec)))
    return 0


def _run(args: argparse.Namespace) -> int:
    from scaling.sweep.workflow import load, run_local, worker_count

    sweep = load(args)
    if args.launcher == "slurm":
        return _run_slurm(args, sweep)
    states = run_local(sweep, worker_count(args, sweep.spec), args.retry_failed, not args.no_progress)
    print(f"wrote {sweep.results_path}")
    return 0 if all(s.status == "completed" for s in states) else 1


def _run_slurm(args: argparse.Namespace, sweep) -> int:
    from scaling.sweep.slurm import submit

    if sweep.spec.targets is not None and not sweep.target_runs():
        print("slurm: submitting the ladder; rerun after it completes to size and submit the targets")
    runs = sweep.runs()
    if any(r.branch_of for r in runs):
        print("slurm: cooldown branches are submitted once their stable runs have completed; rerun then")
    jobs = submit(
        runs,
        sweep.ledger,
        sweep.spec.slurm,
        retry_failed=args.retry_failed,
        cluster=args.cluster,
        population=sweep.spec.launch.population,
    )
    if not jobs:
        print("nothing to submit: every run is completed (or failed/diverged; use --retry-failed)")
        return 0
    print(
        f"submitted {len(jobs)} tasks: {', '.join(job.job_id for job in jobs)}; logs in {sweep.ledger.root}"
    )
    if not args.wait:
        print(f"follow with: scaling sweep status {args.sweep}" + (f" --out {args.out}" if args.out else ""))
        return 0
    results = [job.result() for job in jobs]
    print(", ".join(f"{t}" for t in results))
    return 0 if all(r == "completed" for r in results) else 1


def _status(args: argparse.Namespace) -> int:
    from scaling.sweep.status import format_table, run_state
    from scaling.sweep.workflow import load

    sweep = load(args)
    runs = sweep.runs()
    print(format_table([run_state(r, sweep.ledger) for r in runs], list(runs)))
    return 0


def _collect(args: argparse.Namespace) -> int:
    from scaling.sweep.collect import write_results
    from scaling.sweep.workflow import load

    sweep = load(args)
    path, rows = write_results(sweep.runs(), sweep.ledger, sweep.spec.recipe.name)
    done = sum(r["status"] == "completed" for r in rows)
    print(f"wrote {path}: {len(rows)} runs, {done} completed")
    return 0


def _validate(args: argparse.Namespace) -> int:
    import json

    from scaling.sweep.validation import format_validation, run_validation
    from scaling.sweep.workflow import load

    if args.bootstrap < 0 or not 0 < args.confidence < 1:
        raise UserError(
            f"--bootstrap must be >= 0 and --confidence in (0, 1), got {args.bootstrap} and {args.confidence}"
        )
    sweep = load(args)
    result = run_validation(sweep, n_boot=args.bootstrap, confidence=args.confidence)
    if args.json:
        print(json.dumps(result.summary()))
        return 0
    print(format_validation(result))
    print(f"wrote validation.csv, validation.json, validation.png in {sweep.ledger.sweep_dir}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from scaling.sweep.demo import run_demo

    return run_demo(args)
