"""`scaling fit / predict / backtest / plot`: the analysis wing's subcommands.

    scaling fit TABLE [--law chinchilla|compute|isoflop|envelope|kaplan] --out FIT.json
    scaling predict FIT.json --params N --tokens D [--json]
    scaling predict FIT.json --compute C [--json]
    scaling backtest TABLE --law LAW --fit-max C1 [--test-min C2] [--json]
    scaling plot FIT.json [--table TABLE] --out DIR|FILE.png [--target-compute C]

TABLE is a CSV/JSONL/Parquet file or a sweep directory. Heavy modules (JAX, matplotlib) are imported inside
the handlers so `scaling --help` stays fast. Warnings about the data or the fit print as `warning: ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator

from scaling.fitting.result import LAWS
from scaling.fitting.table import ColumnMap, FitWarning, TableSpec


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


@contextlib.contextmanager
def _print_warnings() -> Iterator[None]:
    def show(message, category, filename, lineno, file=None, line=None):
        prefix = "warning" if issubclass(category, FitWarning) else category.__name__
        print(f"{prefix}: {message}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", FitWarning)
        warnings.showwarning = show
        yield


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "table", help="results table (.csv, .jsonl, .parquet) or sweep directory (**/summary.json)"
    )
    g = p.add_argument_group("reading the table")
    g.add_argument(
        "--params", choices=("nonembedding", "total"), default="nonembedding", help="parameter count N"
    )
    g.add_argument(
        "--flops", choices=("exact", "6nd"), default="exact", help="compute C: flops column or 6ND"
    )
    defaults = ColumnMap()
    for field, what in (
        ("params", "total parameters"),
        ("params_nonembedding", "non-embedding parameters"),
        ("tokens", "training tokens"),
        ("flops", "training FLOPs"),
        ("loss", "final loss"),
        ("name", "run name"),
        ("status", "run status"),
        ("run_dir", "run directory"),
        ("budget", "IsoFLOP budget"),
    ):
        flag = "--" + field.replace("_", "-") + "-col"
        g.add_argument(
            flag, dest=f"col_{field}", metavar="NAME", default=getattr(defaults, field), help=f"{what} column"
        )
    g.add_argument(
        "--status",
        dest="statuses",
        action="append",
        help="run status to fit (repeatable; default: completed)",
    )
    g.add_argument("--drop-invalid", action="store_true", help="skip rows with NaN/inf/non-positive values")


def _spec(args: argparse.Namespace) -> TableSpec:
    from pathlib import Path

    columns = ColumnMap(**{f: getattr(args, f"col_{f}") for f in ColumnMap.__dataclass_fields__})
    return TableSpec(
        source=str(Path(args.table).absolute()),
        columns=columns,
        params=args.params,
        flops=args.flops,
        statuses=tuple(args.statuses or ("completed",)),
        drop_invalid=args.drop_invalid,
    )


def _add_fit_args(p: argparse.ArgumentParser, n_boot: int) -> None:
    g = p.add_argument_group("fitting")
    g.add_argument("--bootstrap", type=int, default=n_boot, help=f"bootstrap resamples (default {n_boot})")
    g.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default 0.95)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    g.add_argument(
        "--points", choices=("frontier", "all"), default="frontier", help="compute law: which runs"
    )
    g.add_argument("--budget-tolerance", type=float, default=0.25, help="isoflop: FLOPs grouping tolerance")
    g.add_argument("--curve-loss", default="train_loss", help="envelope: metrics.jsonl loss key")
    g.add_argument("--smooth", type=int, default=5, help="envelope: moving-average window over logged points")
    g.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _options(args: argparse.Namespace):
    from scaling.fitting.fit import FitOptions

    return FitOptions(
        n_boot=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
        points=args.points,
        budget_tolerance=args.budget_tolerance,
        curve_loss=args.curve_loss,
        smooth=args.smooth,
        progress=not args.no_progress,
    )


def _fmt_interval(iv) -> str:
    return f"[{iv[0]:.6g}, {iv[1]:.6g}]" if iv else ""


def run_fit(args: argparse.Namespace) -> int:
    from scaling.fitting.fit import fit_table
    from scaling.fitting.table import load_spec

    with _print_warnings():
        table = load_spec(_spec(args))
        result = fit_table(table, args.law, _options(args))
    path = result.save(args.out)
    conv = result.conventions
    print(f"{result.law} fit of {result.n_runs} runs ({conv['params']} N, {conv['flops']} C)")
    for name, value in result.params.items():
        print(f"  {name:>8} = {value:.10g}  {_fmt_interval(result.intervals.get(name))}")
    if result.objective is not None:
        print(f"  objective = {result.objective:.17g}")
    if not result.identified:
        print(f"  NOT IDENTIFIED: {'; '.join(result.diagnostics['unidentified'])}")
        print(f"  {result.diagnostics['advice']}; `scaling predict` refuses this fit without --force")
    print(f"wrote {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from scaling.errors import UserError
    from scaling.fitting.predict import predict, predict_compute
    from scaling.fitting.result import FitResult

    fit = FitResult.load(args.fit)
    if args.compute is not None:
        if args.params is not None or args.tokens is not None:
            raise UserError("give either --compute, or --params and --tokens, not both")
        pred = predict_compute(fit, args.compute, force=args.force)
    elif args.params is not None and args.tokens is not None:
        pred = predict(fit, args.params, args.tokens, force=args.force)
    else:
        raise UserError("give --params N and --tokens D, or --compute C")
    if args.json:
        print(json.dumps(pred.to_dict()))
        return 0
    pct = f"{fit.confidence:.0%}"
    if pred.compute is not None:
        print(f"compute C = {pred.compute:.4g} FLOPs ({fit.conventions.get('flops')})")
    if pred.extrapolation is not None:
        print(f"extrapolation: {pred.extrapolation:.3g}x the largest fitted run's compute")
    if pred.params is not None:
        print(f"parameters N = {pred.params:.4g}  {_fmt_interval(pred.params_interval)}")
        print(f"tokens D = {pred.tokens:.4g}  {_fmt_interval(pred.tokens_interval)}")
    if pred.loss is None:
        print("loss: not predicted by this fit (too few budgets for an L_opt(C) law)")
    else:
        print(f"loss = {pred.loss:.6g}  {pct} interval {_fmt_interval(pred.interval)}")
    return 0


def run_backtest(args: argparse.Namespace) -> int:
    from scaling.fitting.backtest import backtest
    from scaling.fitting.table import load_spec

    with _print_warnings():
        table = load_spec(_spec(args))
        result = backtest(table, args.law, args.fit_max, args.test_min, _options(args))
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(
        f"{result.law} fitted on {result.fit_runs} runs with C <= {result.fit_max:.3g}; tested on C >= "
        f"{result.test_min:.3g}"
    )
    print(f"{'run':<28} {'C':>10} {'x extrap':>9} {'predicted':>10} {'actual':>10} {'error':>8}")
    for r in result.rows:
        print(
            f"{r.name[:28]:<28} {r.compute:>10.3g} {r.extrapolation:>9.3g} {r.predicted:>10.5g} "
            f"{r.actual:>10.5g} {r.are:>8.2%}"
        )
    print(f"median absolute relative error {result.median_are:.2%}, max {result.max_are:.2%}")
    if not result.fit.identified:
        reasons = "; ".join(result.fit.diagnostics["unidentified"])
        print(f"NOT IDENTIFIED: {reasons}: these predictions mean little")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from scaling.fitting.plot import make_plots
    from scaling.fitting.result import FitResult
    from scaling.fitting.table import load_spec

    fit = FitResult.load(args.fit)
    recorded = fit.table
    spec = TableSpec(
        source=recorded.get("source", ""),
        columns=ColumnMap(**recorded.get("columns", {})),
        params=fit.conventions.get("params", "nonembedding"),
        flops=fit.conventions.get("flops", "exact"),
        statuses=tuple(recorded.get("statuses", ("completed",))),
        drop_invalid=bool(recorded.get("drop_invalid", False)),
    )
    if args.table:
        spec = dataclasses.replace(spec, source=str(Path(args.table).absolute()))
    with _print_warnings():
        table = load_spec(spec)
        if table.sha256 != recorded.get("sha256"):
            warnings.warn(f"{spec.source} changed since the fit (hash differs)", FitWarning, stacklevel=1)
        paths = make_plots(table, fit, args.out, args.target_compute)
    for path in paths:
        print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fit", help="fit a scaling law to a results table", description=run_fit.__doc__)
    _add_table_args(p)
    p.add_argument("--law", choices=LAWS, default="chinchilla", help="law to fit (default chinchilla)")
    p.add_argument("--out", required=True, help="FIT.json to write")
    _add_fit_args(p, 1000)
    p.set_defaults(func=run_fit)

    p = subparsers.add_parser("predict", help="loss (and compute-optimal size) from a FIT.json")
    p.add_argument("fit", help="FIT.json written by `scaling fit`")
    p.add_argument("--params", type=_positive, help="model parameters N (the fit's convention)")
    p.add_argument("--tokens", type=_positive, help="training tokens D")
    p.add_argument("--compute", type=_positive, help="compute budget C in FLOPs: compute-optimal N, D, loss")
    p.add_argument("--json", action="store_true", help="one JSON object: loss, interval (params, tokens)")
    p.add_argument("--force", action="store_true", help="predict even from a fit flagged as unidentified")
    p.set_defaults(func=run_predict)

    p = subparsers.add_parser("backtest", help="fit on cheap runs, report errors on expensive ones")
    _add_table_args(p)
    p.add_argument("--law", choices=LAWS, default="chinchilla", help="law to test (default chinchilla)")
    p.add_argument("--fit-max", type=_positive, required=True, help="fit on runs with compute <= this")
    p.add_argument("--test-min", type=_positive, help="test runs with compute >= this (default --fit-max)")
    p.add_argument("--json", action="store_true", help="JSON with runs, median_are, max_are")
    _add_fit_args(p, 0)
    p.set_defaults(func=run_backtest)

    p = subparsers.add_parser("plot", help="figures of a fit (PNG and SVG)")
    p.add_argument("fit", help="FIT.json written by `scaling fit`")
    p.add_argument("--table", help="results table (default: the one recorded in FIT.json)")
    p.add_argument("--out", required=True, help="output directory, or a .png/.svg path for the main figure")
    p.add_argument("--target-compute", type=_positive, help="extrapolate the law out to this many FLOPs")
    p.set_defaults(func=run_plot)
