"""`scaling fit / predict / backtest / plot`: the analysis wing's subcommands.

    scaling fit TABLE [--law chinchilla|compute|isoflop|envelope|kaplan] --out FIT.json
    scaling predict FIT.json --params N --tokens D [--json]
    scaling predict FIT.json --compute C [--json]
    scaling backtest TABLE --law LAW --fit-max C1 [--test-min C2] [--json]
    scaling plot FIT.json [--table TABLE] --out DIR|FILE.png [--target-compute C]

TABLE is a CSV/JSONL/Parquet file or a sweep directory. Heavy modules (JAX, matplotlib) are imported inside
the handlers so `scaling --help` stays fast. Warnings about the data or the fit print as `warning: ...`;
bad input (including a numeric flag out of range, `--params -1e9`) is one `error: ...` line and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import UserError
from scaling.fitting.result import LAWS
from scaling.fitting.table import ColumnMap, FitWarning, TableSpec


@dataclass(frozen=True)
class Number:
    """What a numeric flag accepts. Flags arrive as text and are read by the command, so a bad value is a
    one-line `error:` naming the flag, as every other input error is (argparse would add its usage)."""

    what: str
    integer: bool
    holds: Callable[[float], bool]

    def read(self, flag: str, text) -> float | int:
        """The flag's value, or a `UserError` saying what it must be."""
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = math.nan
        if self.integer and value.is_integer():
            value = int(text) if str(text).strip().lstrip("+-").isdigit() else int(value)
        if (self.integer and not isinstance(value, int)) or not self.holds(value):
            raise UserError(f"{flag} must be {self.what}, not {text}")
        return value


POSITIVE = Number("a positive finite number", False, lambda v: 0 < v < math.inf)
NONNEGATIVE = Number("a finite number >= 0", False, lambda v: 0 <= v < math.inf)
FRACTION = Number("a number between 0 and 1 (exclusive)", False, lambda v: 0 < v < 1)
COUNT = Number("a whole number >= 0", True, lambda v: v >= 0)
AT_LEAST_ONE = Number("a whole number >= 1", True, lambda v: v >= 1)

# Python 3.11's argparse reads "-1e9" as an unknown option ("expected one argument"); it accepts only
# "-1" and "-.5" as negative numbers. Values that look like numbers must reach the checks above.
_NUMBER_LIKE = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


def _numbers(args: argparse.Namespace, **kinds: Number) -> argparse.Namespace:
    """`args` with the named numeric flags read and checked (flags left out stay None)."""
    read = {
        dest: kind.read("--" + dest.replace("_", "-"), getattr(args, dest))
        for dest, kind in kinds.items()
        if getattr(args, dest) is not None
    }
    return argparse.Namespace(**{**vars(args), **read})


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
    g.add_argument("--bootstrap", default=n_boot, help=f"bootstrap resamples (default {n_boot})")
    g.add_argument("--confidence", default=0.95, help="interval coverage (default 0.95)")
    g.add_argument("--seed", default=0, help="bootstrap seed")
    g.add_argument(
        "--points", choices=("frontier", "all"), default="frontier", help="compute law: which runs"
    )
    g.add_argument("--budget-tolerance", default=0.25, help="isoflop: FLOPs grouping tolerance")
    g.add_argument("--curve-loss", default="train_loss", help="envelope: metrics.jsonl loss key")
    g.add_argument("--smooth", default=5, help="envelope: moving-average window over logged points")
    g.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


_FIT_NUMBERS = {
    "bootstrap": COUNT,
    "confidence": FRACTION,
    "seed": COUNT,
    "budget_tolerance": NONNEGATIVE,
    "smooth": AT_LEAST_ONE,
}


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

    args = _numbers(args, **_FIT_NUMBERS)
    if Path(args.out).is_dir():
        raise UserError(
            f"--out {args.out} is a directory; give a file name such as {Path(args.out) / 'fit.json'}"
        )
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
    from scaling.fitting.predict import predict, predict_compute
    from scaling.fitting.result import FitResult

    args = _numbers(args, params=POSITIVE, tokens=POSITIVE, compute=POSITIVE)
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
    if pred.fitted_compute is not None:
        print(_extrapolation_line(pred.compute, pred.fitted_compute))
    if pred.params is not None:
        print(f"parameters N = {pred.params:.4g}  {_fmt_interval(pred.params_interval)}".rstrip())
        print(f"tokens D = {pred.tokens:.4g}  {_fmt_interval(pred.tokens_interval)}".rstrip())
    if pred.loss is None:
        print("loss: not predicted by this fit (fewer than 3 usable budgets: no L_opt(C) law)")
    else:
        print(f"loss = {pred.loss:.6g}  {pct} interval {_fmt_interval(pred.interval)}")
    return 0


def _extrapolation_line(compute: float, fitted: tuple[float, float]) -> str:
    low, high = fitted
    span = f"fitted runs {low:.3g} to {high:.3g} FLOPs"
    if compute > high:
        return f"extrapolation: {compute / high:.3g}x the largest fitted run's compute ({span})"
    if compute < low:
        return f"extrapolation: {low / compute:.3g}x below the smallest fitted run's compute ({span})"
    return f"within the fitted compute range ({span})"


def run_backtest(args: argparse.Namespace) -> int:
    from scaling.fitting.backtest import backtest
    from scaling.fitting.table import load_spec

    args = _numbers(args, fit_max=POSITIVE, test_min=POSITIVE, **_FIT_NUMBERS)
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

    from scaling.fitting.plot import make_plots
    from scaling.fitting.result import FitResult
    from scaling.fitting.table import load_spec

    args = _numbers(args, target_compute=POSITIVE)
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


def _add_parser(subparsers: argparse._SubParsersAction, name: str, **kwargs) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, **kwargs)
    parser._negative_number_matcher = _NUMBER_LIKE  # private in 3.11; 3.13 reads "-1e9" as a number itself
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    p = _add_parser(
        subparsers, "fit", help="fit a scaling law to a results table", description=run_fit.__doc__
    )
    _add_table_args(p)
    p.add_argument("--law", choices=LAWS, default="chinchilla", help="law to fit (default chinchilla)")
    p.add_argument("--out", required=True, help="FIT.json to write")
    _add_fit_args(p, 1000)
    p.set_defaults(func=run_fit)

    p = _add_parser(subparsers, "predict", help="loss (and compute-optimal size) from a FIT.json")
    p.add_argument("fit", help="FIT.json written by `scaling fit`")
    p.add_argument("--params", help="model parameters N (the fit's convention)")
    p.add_argument("--tokens", help="training tokens D")
    p.add_argument("--compute", help="compute budget C in FLOPs: compute-optimal N, D, loss")
    p.add_argument("--json", action="store_true", help="one JSON object: loss, interval (params, tokens)")
    p.add_argument("--force", action="store_true", help="predict even from a fit flagged as unidentified")
    p.set_defaults(func=run_predict)

    p = _add_parser(subparsers, "backtest", help="fit on cheap runs, report errors on expensive ones")
    _add_table_args(p)
    p.add_argument("--law", choices=LAWS, default="chinchilla", help="law to test (default chinchilla)")
    p.add_argument("--fit-max", required=True, help="fit on runs with compute <= this")
    p.add_argument("--test-min", help="test runs with compute >= this (default --fit-max)")
    p.add_argument("--json", action="store_true", help="JSON with runs, median_are, max_are")
    _add_fit_args(p, 0)
    p.set_defaults(func=run_backtest)

    p = _add_parser(subparsers, "plot", help="figures of a fit (PNG and SVG)")
    p.add_argument("fit", help="FIT.json written by `scaling fit`")
    p.add_argument("--table", help="results table (default: the one recorded in FIT.json)")
    p.add_argument("--out", required=True, help="output directory, or a .png/.svg path for the main figure")
    p.add_argument("--target-compute", help="extrapolate the law out to this many FLOPs")
    p.set_defaults(func=run_plot)
