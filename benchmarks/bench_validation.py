"""Validated extrapolation of a finished sweep with targets: each law's error at 10x, 100x, 1000x.

    scaling sweep run experiments/cpu_ladder.yaml          # ladder, then targets (resumable, hours)
    python benchmarks/bench_validation.py [--sweep SWEEP.yaml] [--out SWEEP_DIR] [--write]

Prints the validation table of the sweep's own choices (law, parameter count) and, on the same trained
runs, the median ARE of each law under the alternatives a researcher would try: total or non-embedding
parameters, one seed or both, the smallest budget kept or dropped. Also the run-to-run noise of the ladder
(seed 0 against seed 1 of the same point), the floor under any single-run prediction. `--write` puts the
figures into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from report import machine_line, write_section

from scaling.fitting import FitOptions
from scaling.fitting.table import FitWarning, RunTable
from scaling.fitting.validate import VALIDATED_LAWS, LawValidation, validate
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from scaling.sweep.workflow import Sweep

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Validated ladder (issue 10)"


def by_factor(result: LawValidation) -> dict[int, float]:
    """Median ARE per extrapolation factor (rounded to a power of ten)."""
    groups: dict[int, list[float]] = {}
    for row in result.rows:
        groups.setdefault(round(float(np.log10(row.extrapolation))), []).append(row.are)
    return {10**k: float(np.median(v)) for k, v in sorted(groups.items())}


def seed_noise(ladder: RunTable) -> tuple[int, float]:
    """(pairs, median |L_seed1 - L_seed0| / L_seed0) over the ladder's points trained with two seeds."""
    loss = dict(zip(ladder.names, ladder.L, strict=True))
    gaps = [abs(loss[n + "_s1"] - loss[n]) / loss[n] for n in loss if n + "_s1" in loss]
    return len(gaps), float(np.median(gaps)) if gaps else float("nan")


def variants(ladder: RunTable, targets: RunTable) -> dict[str, RunTable]:
    seed0 = np.array([not n.endswith("_s1") for n in ladder.names])
    smallest = (
        ladder.budget == ladder.budget.min() if ladder.budget is not None else np.zeros(len(ladder), bool)
    )
    return {
        "all ladder runs": ladder,
        "seed 0 only": ladder.subset(seed0),
        "smallest budget dropped": ladder.subset(~smallest),
    }


def main_table(results: tuple[LawValidation, ...]) -> list[str]:
    lines = [
        "| law | target | C | x ladder | predicted | 80% interval | actual | ARE | inside |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for law in results:
        if law.error:
            lines.append(f"| {law.law} | not fitted: {law.error} | | | | | | | |")
        for r in law.rows:
            interval = f"{r.interval[0]:.4f}-{r.interval[1]:.4f}" if r.interval else "-"
            flag = "" if law.identified else " (unidentified)"
            inside = "yes" if r.inside else "no"
            lines.append(
                f"| {law.law}{flag} | {r.name} | {r.compute:.3g} | {r.extrapolation:.0f} | "
                f"{r.predicted:.4f} | {interval} | {r.actual:.4f} | {r.are:.2%} | {inside} |"
            )
    return lines


def report(sweep: Sweep, n_boot: int) -> str:
    chosen = sweep.spec.targets.params
    options = FitOptions(n_boot=n_boot, confidence=0.8, progress=False)
    ladder, targets = sweep.tables(chosen)
    lines = [
        f"### `{sweep.spec.name}`: {machine_line()}",
        "",
        f"{len(ladder)} ladder runs (largest {ladder.C.max():.3g} FLOPs), {len(targets)} completed targets; "
        f"targets sized by the ladder's {sweep.spec.targets.law} fit, parameters counted as {chosen}.",
        "",
        *main_table(validate(ladder, targets, VALIDATED_LAWS, options)),
    ]
    pairs, noise = seed_noise(ladder)
    lines += [
        "",
        f"Run-to-run noise of the ladder: median |L(seed 1) - L(seed 0)| / L = {noise:.2%} "
        f"over {pairs} pairs.",
    ]
    lines += [
        "",
        "Median ARE on the same trained runs under other choices (n/a: the law could not be fitted):",
        "",
    ]
    header = "| parameters | ladder | " + " | ".join(VALIDATED_LAWS) + " |"
    lines += [header, "|" + "---|" * (2 + len(VALIDATED_LAWS))]
    for params in ("total", "nonembedding"):
        ladder_p, targets_p = sweep.tables(params)
        for name, subset in variants(ladder_p, targets_p).items():
            cells = []
            for law in validate(subset, targets_p, VALIDATED_LAWS, options):
                per = by_factor(law)
                cells.append(", ".join(f"{k}x {v:.1%}" for k, v in per.items()) if per else "n/a")
            lines.append(f"| {params} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "experiments" / "cpu_ladder.yaml")
    parser.add_argument("--out", type=Path, help="sweep directory (default runs/<sweep name>)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    spec = load_sweep(args.sweep)
    if spec.targets is None:
        parser.error(f"{args.sweep} has no targets: section")
    sweep = Sweep(spec, plan(spec), Ledger(args.out or Path("runs") / spec.name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        text = report(sweep, args.bootstrap)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
