"""Sizing and predictions of trained ladders: the IsoFLOP fit that sized their targets against today's.

    python analysis/isoflop_joint.py SWEEP.yaml=SWEEP_DIR [...] [--bootstrap 200]

For each finished sweep with targets: the exponent a of N_opt ~ C^a and the sizes N_opt(1e12, 1e13, 1e14)
from `targets_fit.json` (the fit that sized the targets, whatever code made it) and from refitting the
ladder now, then today's IsoFLOP predictions of the trained targets (predicted / actual, ARE, inside the
80% interval). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from scaling.fitting import FitOptions
from scaling.fitting.table import FitWarning
from scaling.fitting.validate import validate
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from scaling.sweep.workflow import Sweep

BUDGETS = (1e12, 1e13, 1e14)


def sizes(params: dict) -> str:
    return ", ".join(f"{params['k_N'] * c ** params['a']:.3g}" for c in BUDGETS)


def row(sweep_file: Path, sweep_dir: Path, n_boot: int) -> str:
    spec = load_sweep(sweep_file)
    sweep = Sweep(spec, plan(spec), Ledger(sweep_dir))
    before = json.loads((sweep_dir / "targets_fit.json").read_text())["params"]
    ladder, targets = sweep.tables(spec.targets.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        (law,) = validate(
            ladder, targets, ("isoflop",), FitOptions(n_boot=n_boot, confidence=0.8, progress=False)
        )
    now = law.fit.params
    scored = "; ".join(
        f"{r.extrapolation:.0f}x {r.predicted:.4f} / {r.actual:.4f} = {100 * r.are:.1f}%"
        f" {'in' if r.inside else 'out'}"
        for r in law.rows
    )
    return (
        f"| {spec.name} | {before['a']:.2f} | {sizes(before)} | {now['a']:.2f} | {sizes(now)} | "
        f"{'yes' if law.identified else 'no'} | {scored} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", help="SWEEP.yaml=SWEEP_DIR pairs")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    print(
        "| sweep | a (sized) | N_opt 1e12, 1e13, 1e14 (sized) | a (now) | N_opt (now) | identified | "
        "today's IsoFLOP predictions of the trained targets |"
    )
    print("|---|---|---|---|---|---|---|")
    for pair in args.sweeps:
        sweep_file, _, sweep_dir = pair.partition("=")
        print(row(Path(sweep_file), Path(sweep_dir), args.bootstrap))


if __name__ == "__main__":
    main()
