"""`scaling demo`: the whole lab in one resumable command on the CPU IsoFLOP sweep.

Plan, run (skipping what is done), collect `results.csv`, then hand the table to the analysis wing
(`scaling fit`, `scaling predict`, `scaling plot`) for the predicted loss and compute-optimal size at
1000x the sweep's largest budget. The analysis wing is called through its CLI, so the demo depends on
the results table only, like any user of the fitter.
"""

from __future__ import annotations

import argparse
import sys

from scaling.cli import main as scaling_main
from scaling.sweep.cli import load, plan_table, worker_count
from scaling.sweep.collect import write_results
from scaling.sweep.launch import LocalLauncher, make_slots
from scaling.sweep.status import format_table

EXTRAPOLATION = 1000.0


def run_demo(args: argparse.Namespace) -> int:
    spec, runs, ledger = load(args)
    workers = worker_count(args, spec)
    print(plan_table(spec, runs, ledger, workers), flush=True)
    launcher = LocalLauncher(
        runs,
        ledger,
        make_slots(spec.launch, workers),
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )
    states = launcher.run()
    print(format_table(states, list(runs)))
    table, _ = write_results(runs, ledger, spec.recipe.name)
    print(f"wrote {table}")
    if not all(s.status == "completed" for s in states):
        print("some runs did not complete: rerun `scaling demo` to resume (--retry-failed to retry failures)")
        return 1
    target = EXTRAPOLATION * max(run.budget or run.flops for run in runs)
    fit = ledger.sweep_dir / "fit.json"
    for command in (
        ["fit", str(table), "--out", str(fit), *(["--no-progress"] if args.no_progress else [])],
        ["plot", str(fit), "--out", str(ledger.sweep_dir / "fit.png"), "--target-compute", f"{target:.6g}"],
        ["predict", str(fit), "--compute", f"{target:.6g}"],
    ):
        print(f"$ scaling {' '.join(command)}", flush=True)
        code = scaling_main(command)
        sys.stdout.flush()
        if code:
            return code
    return 0
