"""`scaling train CONFIG.yaml [--out RUN_DIR] [dotted.key=value ...]` and
`scaling train-population CONFIG.yaml ... --out RUN_DIR ...`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train (or resume) one run",
        description="Train one model from a YAML run config; rerunning the same command resumes it.",
    )
    parser.add_argument("config", help="YAML run config (see experiments/tiny.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.steps=50")
    parser.add_argument("--out", help="run directory (default: runs/<name>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-branches", action="store_true", help="do not train train.branches after the run (a sweep does)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log sharding and compile details")
    parser.add_argument("--coordinator", help="host:port of process 0, for a multi-process run")
    parser.add_argument("--num-processes", type=int, help="processes in a multi-process run")
    parser.add_argument("--process-id", type=int, help="this process's index in a multi-process run")
    parser.set_defaults(func=run)
    _register_population(subparsers)


def _register_population(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-population",
        help="train (or resume) runs of one model shape together in one process",
        description="Train several runs that share model, data, batch and mesh (they may differ in the "
        "rate schedule, seed, steps and logging) in one process with one compiled step; each member "
        "writes its own run directory, bit for bit as `scaling train` would. Rerunning resumes them.",
    )
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML run configs, one per member")
    parser.add_argument("--out", nargs="+", required=True, metavar="RUN_DIR", help="one per config, in order")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log sharding and compile details")
    parser.set_defaults(func=run_population)


_KEYS = ("status", "steps", "final_train_loss", "final_val_loss")


def run(args: argparse.Namespace) -> int:
    """Exit 0 completed, 1 diverged, interrupted in the loop or failed, 2 bad input, 143 (SIGTERM) or 130
    (Ctrl-C) during start-up (one line, nothing of this session to save)."""
    summaries = _guarded(_train, args)
    if isinstance(summaries, int):
        return summaries
    first, *branches = summaries
    print(json.dumps({k: getattr(first, k) for k in _KEYS}))
    for summary in branches:
        print(json.dumps({"branch": summary.name, **{k: getattr(summary, k) for k in _KEYS}}))
    return 0 if all(s.completed for s in summaries) else 1


def run_population(args: argparse.Namespace) -> int:
    """One line per member; exit codes as `run`'s, 0 only when every member completed."""
    summaries = _guarded(_train_population, args)
    if isinstance(summaries, int):
        return summaries
    for summary in summaries:
        print(json.dumps({"run": summary.name, **{k: getattr(summary, k) for k in _KEYS}}))
    return 0 if all(s.completed for s in summaries) else 1


def _guarded(train_fn, args: argparse.Namespace):
    """`train_fn(args)`'s summaries, or the exit code of a stop during start-up (after its one line)."""
    from scaling.stops import STOP_SIGNALS
    from scaling.train.run_guard import Interrupted, leave_now

    previous = {s: signal.signal(s, leave_now) for s in STOP_SIGNALS}  # until the trainer takes them over
    try:
        return train_fn(args)
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return 128 + stop.signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _train_population(args: argparse.Namespace):
    from scaling.train.grouping import check_population
    from scaling.train.population import train_population
    from scaling.train.run_config import load_run_config

    cfgs = [load_run_config(path) for path in args.configs]
    check_population(cfgs, [Path(out) for out in args.out])  # bad grouping fails before any data loads
    _enable_compilation_cache()
    return train_population(cfgs, args.out, progress=not args.no_progress, verbose=args.verbose)


def _train(args: argparse.Namespace):
    from scaling.train.distributed import initialize
    from scaling.train.loop import train
    from scaling.train.run_config import load_run_config

    cfg = load_run_config(args.config, args.overrides)  # a bad config fails before joining any cluster
    _enable_compilation_cache()
    initialize(args.coordinator, args.num_processes, args.process_id)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    summaries = [train(cfg, out, progress=not args.no_progress, verbose=args.verbose)]
    if summaries[0].completed and not args.no_branches:
        from scaling.train.branch import branch_dirs

        for branch_cfg, branch_dir in branch_dirs(cfg, out):
            summaries.append(
                train(branch_cfg, branch_dir, progress=not args.no_progress, verbose=args.verbose)
            )
    return summaries


def _enable_compilation_cache() -> None:
    """Reuse compiled steps across processes, so a resumed run skips most of its compile time.

    JAX_COMPILATION_CACHE_DIR, when set, wins (an empty value turns the cache off).
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import jax

    from scaling.data.config import cache_root

    jax.config.update("jax_compilation_cache_dir", str(cache_root("") / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
