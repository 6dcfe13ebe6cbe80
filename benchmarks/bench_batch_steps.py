"""Which batch the CPU ladder's short runs train best at: the probe behind `recipe.short_run_batch`.

    python benchmarks/bench_batch_steps.py [--corpus stdlib|gutenberg] [--out DIR] [--write]

Trains ladder-scale runs only (the wsd recipe of experiments/gutenberg_ladder_dense_wsd.yaml without
branching, one seed): two sizes at 6.25e9 and three at 1e11 FLOPs, once at each batch of 4, 8 and 16
sequences. Every run is scored on the same validation windows (a batch of 4 evaluates in 4x the batches
of 16), so the columns compare models, not yardsticks. The table gives each run's tokens, its steps at
batch 16, the final validation loss per batch, and the batch that `short_run_batch: {steps: 2000,
min_batch_size: 4}` gives it. gutenberg needs ../shared. `--write` puts the table into RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from report import probe_main, probe_spec, train_settings

from scaling.sweep.spec import ShortRunBatch

ROOT = Path(__file__).resolve().parents[1]
BASE_SPEC = ROOT / "experiments" / "gutenberg_ladder_dense_wsd.yaml"
BATCHES = (4, 8, 16)
RULE = ShortRunBatch(steps=2000, min_batch_size=4)
GRID = [
    {"flops": 6.25e9, "params": [8.88e2, 3.31e3], "points": 2},
    {"flops": 1.0e11, "params": [3.31e3, 1.28e4], "points": 3},
]


def sweep_spec(corpus: str, batch: int) -> dict:
    spec = probe_spec(BASE_SPEC, f"batch_probe_{corpus}_b{batch}", GRID, corpus)
    spec["base"]["train"]["eval_batches"] *= 16 // batch  # the windows batch 16 evaluates
    spec["recipe"].update(branching=False, batch_size=batch)
    return spec


def run_sweeps(corpus: str, out: Path) -> dict[int, pd.DataFrame]:
    """Every batch's results table, training what is missing."""
    return train_settings({batch: sweep_spec(corpus, batch) for batch in BATCHES}, out)


def report(tables: dict[int, pd.DataFrame]) -> str:
    wide = tables[16]
    heads = " | ".join(f"batch {b}" for b in BATCHES)
    lines = [
        f"| run | tokens | steps at batch 16 | {heads} | best | rule's batch |",
        "|---|---|---|" + "---|" * (len(BATCHES) + 2),
    ]
    for name in wide.index:
        losses = {b: tables[b].loss[name] for b in BATCHES}
        tokens = wide.tokens[name]
        rule = RULE.at(tokens, int(wide["T"][name]), BATCHES[-1], 1)
        cells = " | ".join(f"{losses[b]:.4f}" for b in BATCHES)
        best = min(losses, key=losses.get)
        lines.append(f"| {name} | {tokens:,.0f} | {wide.steps[name]} | {cells} | {best} | {rule} |")
    return "\n".join(lines)


def main() -> None:
    probe_main(
        __doc__,
        ROOT / "runs" / "bench_batch_steps",
        lambda out, corpus: report(run_sweeps(corpus, out)),
        "## Batch by run length (issue 10): {corpus}",
        "`python benchmarks/bench_batch_steps.py --corpus {corpus}`: {machine}; the wsd recipe of "
        "`gutenberg_ladder_dense_wsd.yaml` without branching, one seed, final loss on the same validation "
        "windows at every batch.",
        corpora=("gutenberg", "stdlib"),
    )


if __name__ == "__main__":
    main()
