"""Which AdamW beta2 the CPU ladder's small batches train best at: a probe for the ladder recipe.

    python benchmarks/bench_beta2.py [--corpus stdlib|gutenberg] [--out DIR] [--write]

Why: the ladder trains on batches of 256-1,024 tokens with beta2 = 0.95, a second-moment average over ~20
steps. Porian et al. (2024, "Resolving discrepancies in compute-optimal scaling") found beta2 must rise at
small batch sizes, and Marek et al. (2025, "Small batch size training for language models") keep its
half-life fixed in tokens rather than in steps; at these batches either points at 0.99-0.999. Trains
ladder-scale runs only (the corpus's `*_ladder_steps.yaml` recipe, one seed): two sizes at 6.25e9 and two
at 1e11 FLOPs, once per beta2. The table gives each run's final validation loss (the recipe's validation
windows, the same at every batch); the mean ranks the settings. gutenberg needs ../shared.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from report import probe_main, probe_spec, settings_table, train_settings

ROOT = Path(__file__).resolve().parents[1]
BASE_SPECS = {
    "stdlib": ROOT / "experiments" / "cpu_ladder_steps.yaml",
    "gutenberg": ROOT / "experiments" / "gutenberg_ladder_steps.yaml",
}
BETA2S = (0.95, 0.99, 0.999)
GRID = [
    {"flops": 6.25e9, "params": [8.88e2, 3.31e3], "points": 2},
    {"flops": 1.0e11, "params": [7.27e3, 1.28e4], "points": 2},
]


def sweep_spec(corpus: str, beta2: float) -> dict:
    spec = probe_spec(BASE_SPECS[corpus], f"beta2_probe_{corpus}_{beta2:g}", GRID, corpus)
    spec["base"].setdefault("optim", {})["beta2"] = beta2
    return spec


def run_sweeps(corpus: str, out: Path) -> dict[float, pd.DataFrame]:
    """Every beta2's results table, training what is missing."""
    return train_settings({beta2: sweep_spec(corpus, beta2) for beta2 in BETA2S}, out)


def report(tables: dict[float, pd.DataFrame]) -> str:
    first = tables[BETA2S[0]]
    lead = {
        "run": str,
        "steps": lambda name: str(first.steps[name]),
        "batch": lambda n: str(first.batch_size[n]),
    }
    return settings_table(tables, [f"beta2 {b:g}" for b in BETA2S], lead)


def main() -> None:
    probe_main(
        __doc__,
        ROOT / "runs" / "bench_beta2",
        lambda out, corpus: report(run_sweeps(corpus, out)),
        "## AdamW beta2 at small batches (issue 10): {corpus}",
        "`python benchmarks/bench_beta2.py --corpus {corpus}`: {machine}; the recipe of the corpus's "
        "`*_ladder_steps.yaml`, one seed, final loss on the recipe's validation windows.",
        corpora=("stdlib", "gutenberg"),
    )


if __name__ == "__main__":
    main()
