"""The lab's fitter on the published Chinchilla runs: Besiroglu et al.'s refit, then a 10-100x backtest.

    python analysis/chinchilla_replication.py SVG_EXTRACTED_DATA.csv [--out DIR] [--bootstrap 200]

Input: `data/svg_extracted_data.csv` of the repository epoch-research/analyzing-chinchilla (245 runs
read off Hoffmann et al.'s figure 4: `Model Size`, `Training FLOP`, `loss`; not shipped here). As that
paper did, tokens are C / (6N) and the 5 highest losses are left out (240 runs). Writes the results table
`chinchilla_240.csv` (the lab's columns) and prints the approach-3 fit beside the replication's
published refit, then the backtest: fitted on runs <= 1.3e20 FLOPs, every run >= 1e21 predicted.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.fitting import FitOptions
from scaling.fitting.backtest import backtest
from scaling.fitting.fit import fit_table
from scaling.fitting.table import FitWarning, load_table

PUBLISHED = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}  # Besiroglu et al.
EXCLUDED_HIGHEST = 5
FIT_MAX, TEST_MIN = 1.3e20, 1e21


def lab_table(source: Path, out: Path) -> Path:
    raw = pd.read_csv(source)
    kept = raw[raw["loss"] < np.sort(raw["loss"].to_numpy())[-EXCLUDED_HIGHEST]]
    n, c = kept["Model Size"].to_numpy(), kept["Training FLOP"].to_numpy()
    table = pd.DataFrame(
        {
            "name": [f"chinchilla_{i}" for i in kept.index],
            "status": "completed",
            "params": n,
            "params_nonembedding": n,
            "tokens": c / (6.0 * n),
            "flops": c,
            "loss": kept["loss"].to_numpy(),
        }
    )
    path = out / "chinchilla_240.csv"
    table.to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/chinchilla_replication"))
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = load_table(lab_table(args.source, args.out), params="total")
    options = FitOptions(n_boot=args.bootstrap, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fit = fit_table(table, "chinchilla", options)
        scores = backtest(table, "chinchilla", FIT_MAX, TEST_MIN, options)
    print(f"{len(table)} runs; approach 3 (lab) against Besiroglu et al.'s refit:")
    print("| parameter | lab | 95% interval | published | lab / published - 1 |\n|---|---|---|---|---|")
    for key, value in PUBLISHED.items():
        lo, hi = fit.intervals[key]
        ours = fit.params[key]
        print(f"| {key} | {ours:.4g} | {lo:.4g}-{hi:.4g} | {value:.4g} | {ours / value - 1:+.2%} |")
    print(
        f"backtest: fitted on {scores.fit_runs} runs <= {FIT_MAX:.2g} FLOPs, {len(scores.rows)} runs >= "
        f"{TEST_MIN:.2g} predicted: median ARE {scores.median_are:.2%}, max {scores.max_are:.2%}"
    )


if __name__ == "__main__":
    main()
