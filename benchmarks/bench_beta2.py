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
import yaml
from report import probe_main, train_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE_SPECS = {
    "stdlib": ROOT / "experiments" / "cpu_ladder_steps.yaml",
    "gutenberg": ROOT / "experiments" / "gutenberg_ladder_steps.yaml",
}
CORPORA = {"stdlib": "stdlib", "gutenberg": str(ROOT.parent / "shared" / "data" / "gutenberg")}
BETA2S = (0.95, 0.99, 0.999)
GRID = [
    {"flops": 6.25e9, "params": [8.88e2, 3.31e3], "points": 2},
    {"flops": 1.0e11, "params": [7.27e3, 1.28e4], "points": 2},
]


def sweep_spec(corpus: str, beta2: float) -> dict:
    spec = yaml.safe_load(BASE_SPECS[corpus].read_text())
    spec["name"] = f"beta2_probe_{corpus}_{beta2:g}"
    spec["base"]["data"]["corpus"] = CORPORA[corpus]
    spec["base"].setdefault("optim", {})["beta2"] = beta2
    spec["recipe"]["seeds"] = 1
    spec["grid"] = {"isoflop": GRID}
    spec.pop("targets")
    return spec


def run_sweeps(corpus: str, out: Path) -> dict[float, pd.DataFrame]:
    """Every beta2's results table, training what is missing."""
    tables = {}
    for beta2 in BETA2S:
        spec = sweep_spec(corpus, beta2)
        csv = train_sweep(spec, out / f"{spec['name']}.yaml", out / spec["name"])
        tables[beta2] = pd.read_csv(csv).set_index("name")
    return tables


def report(tables: dict[float, pd.DataFrame]) -> str:
    first = tables[BETA2S[0]]
    lines = [
        "| run | steps | batch | " + " | ".join(f"beta2 {b:g}" for b in BETA2S) + " |",
        "|---|---|---|" + "---|" * len(BETA2S),
    ]
    for name in first.index:
        losses = " | ".join(f"{tables[b].loss[name]:.4f}" for b in BETA2S)
        lines.append(f"| {name} | {first.steps[name]} | {first.batch_size[name]} | {losses} |")
    means = " | ".join(f"{tables[b].loss.mean():.4f}" for b in BETA2S)
    lines.append(f"| mean | | | {means} |")
    return "\n".join(lines)


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
