"""A branched (warmup-stable-decay) ladder against the cosine ladder of the same sizes and budgets.

    scaling sweep run experiments/cpu_ladder.yaml         # the cosine ladder and its targets (hours)
    scaling sweep run experiments/cpu_ladder_wsd.yaml     # its branched twin (minutes)
    python benchmarks/bench_wsd.py [--pair ladder|dense] [--cosine-out DIR] [--wsd-out DIR] [--write]

`--pair dense` compares experiments/cpu_ladder_dense.yaml with its twin cpu_ladder_dense_wsd.yaml: the
same recipes on 13 budgets whose sizes are shared by many budgets, the grid a branched ladder saves on.

Reports the compute each ladder trains (a branch's stable part is its stable run's), each wsd run's final
loss against its cosine twin (same name: same model, tokens and seed), and the validation ARE of every law
fitted on each ladder, scored on its own targets and, for the wsd ladder, also on the cosine ones.
`--write` puts the figures into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from bench_validation import by_factor, main_table
from report import machine_line, write_section

from scaling.fitting import FitOptions
from scaling.fitting.table import FitWarning
from scaling.fitting.validate import VALIDATED_LAWS, validate
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from scaling.sweep.workflow import Sweep

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {  # --pair: (cosine sweep, its branched twin, the RESULTS.md section)
    "ladder": ("cpu_ladder", "cpu_ladder_wsd", "## WSD branches (issue 12)"),
    "dense": ("cpu_ladder_dense", "cpu_ladder_dense_wsd", "## WSD branches, dense ladder (issue 12)"),
}


def _sweep(name: str, out: Path | None) -> Sweep:
    spec = load_sweep(ROOT / "experiments" / f"{name}.yaml")
    return Sweep(spec, plan(spec), Ledger(out or Path("runs") / spec.name))


def twin_lines(cosine, wsd, stable: set[str]) -> list[str]:
    """Each wsd run's loss against its cosine twin: the differences, summarised and by role."""
    cos = dict(zip(cosine.names, cosine.L, strict=True))
    gaps = {n: (loss - cos[n]) / cos[n] for n, loss in zip(wsd.names, wsd.L, strict=True) if n in cos}
    lines = ["| runs | count | median (wsd - cosine) / cosine | min | max |", "|---|---|---|---|---|"]
    for label, is_stable in (("branches", False), ("stable runs", True)):
        values = np.array([g for n, g in gaps.items() if (n in stable) == is_stable])
        if len(values):
            summary = f"{np.median(values):+.2%} | {values.min():+.2%} | {values.max():+.2%}"
            lines.append(f"| {label} | {len(values)} | {summary} |")
    return lines


def report(cosine: Sweep, wsd: Sweep, n_boot: int) -> str:
    params = cosine.spec.targets.params
    options = FitOptions(n_boot=n_boot, confidence=0.8, progress=False)
    cosine_ladder, targets = cosine.tables(params)
    wsd_ladder, _ = wsd.tables(params)
    cos_flops = sum(r.own_flops for r in cosine.ladder)
    wsd_flops = sum(r.own_flops for r in wsd.ladder)
    lines = [
        f"### `{wsd.spec.name}` against `{cosine.spec.name}`: {machine_line()}",
        "",
        f"Compute trained: cosine ladder {cos_flops:.3g} FLOPs ({len(cosine.ladder)} runs), branched ladder "
        f"{wsd_flops:.3g} ({sum(r.branch_of is None for r in wsd.ladder)} stable runs and "
        f"{sum(r.branch_of is not None for r in wsd.ladder)} branches): {wsd_flops / cos_flops:.0%}.",
        "",
        "Final validation loss of each wsd run against its cosine twin:",
        "",
        *twin_lines(cosine_ladder, wsd_ladder, {r.name for r in wsd.ladder if r.branch_of is None}),
    ]
    wsd_targets = wsd.tables(params)[1]
    blocks = [
        ("the cosine ladder", cosine_ladder, "its own (cosine) targets", targets),
        ("the branched wsd ladder", wsd_ladder, "its own (wsd) targets", wsd_targets),
        ("the branched wsd ladder", wsd_ladder, "the cosine ladder's targets", targets),
    ]
    for ladder_label, ladder, target_label, target_table in blocks:
        if not len(target_table):
            lines += ["", f"Fitted on {ladder_label}: {target_label} are not trained yet."]
            continue
        results = validate(ladder, target_table, VALIDATED_LAWS, options)
        medians = ", ".join(
            f"{law.law} " + "/".join(f"{v:.2%}" for v in by_factor(law).values())
            for law in results
            if law.rows
        )
        lines += [
            "",
            f"Fitted on {ladder_label}, scored on {target_label}; median ARE by factor: {medians}",
            "",
        ]
        lines += main_table(results)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), default="ladder", help="which two sweeps")
    parser.add_argument("--cosine-out", type=Path, help="cosine sweep directory (default runs/<its name>)")
    parser.add_argument("--wsd-out", type=Path, help="branched sweep directory (default runs/<its name>)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    cosine_name, wsd_name, section = PAIRS[args.pair]
    cosine, wsd = _sweep(cosine_name, args.cosine_out), _sweep(wsd_name, args.wsd_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        text = report(cosine, wsd, args.bootstrap)
    print(text)
    if args.write:
        write_section(section, text)


if __name__ == "__main__":
    main()
