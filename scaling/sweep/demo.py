"""`scaling demo`: the lab's whole job in one resumable command, on a small CPU ladder.

Plan and run the ladder of `experiments/cpu_demo.yaml` (skipping what is done), size its target at 10x
the largest ladder budget from the ladder's own fit, train it, then fit every law on the ladder alone and
score its prediction of the target: predicted loss, interval, actual loss, error.
"""

from __future__ import annotations

import argparse

from scaling.sweep.validation import format_validation, run_validation
from scaling.sweep.workflow import load, plan_table, run_local, worker_count

DEMO_BOOTSTRAP = 200


def run_demo(args: argparse.Namespace) -> int:
    sweep = load(args)
    workers = worker_count(args, sweep.spec)
    print(plan_table(sweep, workers), flush=True)
    states = run_local(sweep, workers, args.retry_failed, not args.no_progress)
    print(f"wrote {sweep.results_path}")
    if not all(s.status == "completed" for s in states) or not sweep.target_runs():
        print("some runs did not complete: rerun `scaling demo` to resume (--retry-failed to retry failures)")
        return 1
    result = run_validation(sweep, n_boot=DEMO_BOOTSTRAP)
    print(format_validation(result))
    print(f"wrote validation.csv, validation.json, validation.png in {sweep.ledger.sweep_dir}")
    for law in result.results:
        for row in law.rows:
            print(_headline(law, row))
    return 0


def _headline(law, row) -> str:
    interval = (
        f"{law.confidence:.0%} interval {row.interval[0]:.4f}-{row.interval[1]:.4f}" if row.interval else ""
    )
    verdict = "" if row.inside is None else ("inside" if row.inside else "OUTSIDE")
    flag = "" if law.identified else " [fit not identified]"
    return (
        f"{row.name} ({row.extrapolation:.0f}x the ladder): {law.law}{flag} predicted {row.predicted:.4f} "
        f"({interval}), trained {row.actual:.4f}, error {row.are:.2%} {verdict}"
    )
