"""Figures of the validated CPU ladder: its IsoFLOP profiles, the fitted laws out to the targets, and the
targets' predicted against actual losses.

    scaling sweep run experiments/cpu_ladder.yaml --out runs/cpu_ladder
    python analysis/cpu_ladder.py [--sweep experiments/cpu_ladder.yaml] [--out-dir runs/cpu_ladder]

Writes `figures/cpu_ladder/` (validation.png, and the IsoFLOP fit's isoflop / allocation / loss_vs_compute /
residuals figures) from the finished sweep; the findings are in `cpu_ladder.md`.
"""

from __future__ import annotations

import argparse
import shutil
import warnings
from pathlib import Path

from scaling.fitting import FitOptions, fit_table, make_plots
from scaling.fitting.table import FitWarning
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from scaling.sweep.validation import run_validation
from scaling.sweep.workflow import Sweep

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "experiments" / "cpu_ladder.yaml")
    parser.add_argument("--out-dir", type=Path, help="sweep directory (default runs/<sweep name>)")
    parser.add_argument("--figures", type=Path, default=Path(__file__).parent / "figures" / "cpu_ladder")
    parser.add_argument("--bootstrap", type=int, default=300)
    args = parser.parse_args()
    spec = load_sweep(args.sweep)
    sweep = Sweep(spec, plan(spec), Ledger(args.out_dir or Path("runs") / spec.name))
    args.figures.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        run_validation(sweep, n_boot=args.bootstrap)
        shutil.copy(sweep.ledger.sweep_dir / "validation.png", args.figures / "validation.png")
        ladder, targets = sweep.tables(spec.targets.params)
        fit = fit_table(ladder, "isoflop", FitOptions(n_boot=args.bootstrap, progress=False))
        for path in make_plots(ladder, fit, args.figures, target_compute=float(targets.C.max())):
            if path.suffix == ".png":
                print(f"wrote {path}")
            else:
                path.unlink()
    print(f"wrote {args.figures / 'validation.png'}")


if __name__ == "__main__":
    main()
