"""Which AdamW timescale the CPU ladder trains best at: the probe behind `recipe.weight_decay`.

    python benchmarks/bench_weight_decay.py [--out DIR] [--write]

Trains ladder-scale runs only (the cosine recipe of experiments/cpu_ladder.yaml, one seed): two sizes at
6.25e9 and two at 1e11 FLOPs, once with the recipe's fixed weight decay (lambda = 0.1) and once per
timescale tau with lambda = 1 / (tau * lr * steps). Each setting is one `scaling sweep run`, so a rerun
skips what is trained. The table gives each run's final validation loss and the timescale that lambda = 0.1
amounts to there; the mean over the runs ranks the settings. `--write` puts it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from report import probe_main, probe_spec, settings_table, train_settings

ROOT = Path(__file__).resolve().parents[1]
BASE_SPEC = ROOT / "experiments" / "cpu_ladder.yaml"
FIXED_DECAY = 0.1  # the base run config's optim.weight_decay, which the fixed setting keeps
TIMESCALES = (0.1, 0.3, 1.0, 3.0)
GRID = [
    {"flops": 6.25e9, "params": [1.91e3, 3.31e3], "points": 2},
    {"flops": 1.0e11, "params": [7.27e3, 1.28e4], "points": 2},
]


def sweep_spec(label: str, timescale: float | None) -> dict:
    spec = probe_spec(BASE_SPEC, f"wd_probe_{label}", GRID)
    if timescale is not None:
        spec["recipe"]["weight_decay"] = {"timescale": timescale}
    return spec


def run_sweeps(out: Path) -> dict[str, pd.DataFrame]:
    """Every setting's results table by label ('fixed' or 't<tau>'), training what is missing."""
    settings = [("fixed", None)] + [(f"t{tau:g}", tau) for tau in TIMESCALES]
    return train_settings({label: sweep_spec(label, tau) for label, tau in settings}, out)


def report(tables: dict[str, pd.DataFrame]) -> str:
    fixed = tables["fixed"]
    tau_fixed = 1.0 / (fixed.lr * FIXED_DECAY * fixed.steps)
    heads = ["lambda 0.1"] + [f"tau {label[1:]}" for label in list(tables)[1:]]
    lead = {
        "run": str,
        "steps": lambda name: str(fixed.steps[name]),
        "tau of lambda 0.1": lambda name: f"{tau_fixed[name]:.2f}",
    }
    return settings_table(tables, heads, lead)


def main() -> None:
    probe_main(
        __doc__,
        ROOT / "runs" / "bench_weight_decay",
        lambda out: report(run_sweeps(out)),
        "## Weight decay by timescale (issue 10)",
        "`python benchmarks/bench_weight_decay.py`: {machine}; the cosine recipe of `cpu_ladder.yaml`, "
        "one seed, final loss on the whole validation split.",
    )


if __name__ == "__main__":
    main()
