"""Is a ladder of small runs enough? Fit a synthetic ladder, backtest 1000x out, and plot.

    python analysis/extrapolate_ladder.py [--out analysis/figures] [--bootstrap 200]

Runs are drawn on IsoFLOP budgets from 1e16 to 1e22 FLOPs with the Besiroglu et al. (2024) Chinchilla refit
and 0.5% log-normal noise, written as a `results.csv` like `scaling sweep collect` makes. Each law is
fitted on budgets <= 1e19 and tested on the 1e22 budget (1000x), through the same API the CLI uses;
then the Chinchilla fit's figures are written.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.fitting import FitOptions, backtest, fit_table, load_table, make_plots, predict_compute
from scaling.fitting.table import FitWarning

TRUE = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def ladder(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    g = (TRUE["alpha"] * TRUE["A"] / (TRUE["beta"] * TRUE["B"])) ** (1 / (TRUE["alpha"] + TRUE["beta"]))
    rows = []
    for budget in np.geomspace(1e16, 1e22, 7):
        for n in g * (budget / 6) ** a * np.geomspace(1 / 8, 8, 9):
            d = budget / (6 * n)
            loss = (TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]) * np.exp(
                rng.normal(0, 0.005)
            )
            rows.append(
                {
                    "name": f"c{budget:.0e}_n{n:.3g}",
                    "status": "completed",
                    "params": n,
                    "params_nonembedding": n,
                    "tokens": d,
                    "flops": budget,
                    "loss": loss,
                    "budget": budget,
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "figures"))
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_table(ladder(out / "ladder_results.csv"))
    options = FitOptions(n_boot=args.bootstrap, progress=False)
    print(f"{'law':<12} {'fit runs':>8} {'test runs':>9} {'median ARE':>11} {'max ARE':>8}")
    for law in ("chinchilla", "compute", "isoflop"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            result = backtest(table, law, fit_max=1.01e19, test_min=0.99e22, options=options)
        errors = f"{result.median_are:>11.2%} {result.max_are:>8.2%}"
        print(f"{law:<12} {result.fit_runs:>8} {len(result.rows):>9} {errors}")
    fit = fit_table(table.subset(table.C <= 1.01e19), "chinchilla", options)
    pred = predict_compute(fit, 1e22)
    print(
        f"chinchilla fit on <= 1e19 FLOPs: alpha={fit.params['alpha']:.4f} beta={fit.params['beta']:.4f} "
        f"(true {TRUE['alpha']}, {TRUE['beta']}); at 1e22: N_opt={pred.params:.3g} {pred.params_interval}, "
        f"loss={pred.loss:.4f} {pred.interval}"
    )
    for path in make_plots(table, fit, out / "ladder", target_compute=1e22):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
