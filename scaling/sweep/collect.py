"""`results.csv`: one row per planned run, the table the fitter reads.

`loss` is the final validation loss, filled only for completed runs (a partial run is never counted as
finished). Numbers come from each run's summary (exact parameter counts and FLOPs, not 6ND). Floats are
written in Python's shortest round-trip form and `run_dir` relative to the CSV, so two sweeps that trained
bitwise-identical models write byte-identical tables. Timing lives in the summaries, not here.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import PlannedRun
from scaling.sweep.status import run_state

COLUMNS = (
    "name",
    "status",
    "params",
    "params_nonembedding",
    "params_embedding",
    "tokens",
    "flops",
    "loss",
    "final_train_loss",
    "run_dir",
)
# After the fitter's columns: passes over the corpus, then the grid point and the recipe's choices, for
# grouping and plots.
EXTRA_COLUMNS = (
    "epochs",
    "role",
    "budget",
    "target_params",
    "steps",
    "D",
    "L",
    "H",
    "T",
    "batch_size",
    "lr",
    "recipe",
)
TARGET_PREFIX = "target_"  # target runs (trained after the ladder, sized by its fit) are named so


def _cell(value) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def result_rows(runs: tuple[PlannedRun, ...], ledger: Ledger, recipe: str, relative_to: Path) -> list[dict]:
    rows = []
    for run in runs:
        state = run_state(run, ledger)
        done = state.status == "completed"
        summary = state.summary if done else None
        m = run.config.model
        row = {
            "name": run.name,
            "status": state.status,
            "params": m.params,
            "params_nonembedding": m.params_nonembedding,
            "params_embedding": m.params_embedding,
            "tokens": summary.tokens if summary else run.tokens,
            "flops": summary.flops if summary else run.flops,
            "loss": summary.final_val_loss if summary else None,
            "final_train_loss": summary.final_train_loss if summary else None,
            "epochs": summary.epochs if summary else None,
            "run_dir": os.path.relpath(ledger.run_dir(run.name), relative_to),
            "role": "target" if run.name.startswith(TARGET_PREFIX) else "ladder",
            "budget": run.budget,
            "target_params": run.target_params,
            "steps": run.steps,
            "D": m.D,
            "L": m.L,
            "H": m.H,
            "T": m.T,
            "batch_size": run.config.train.batch_size,
            "lr": run.config.optim.lr,
            "recipe": recipe,
        }
        rows.append(row)
    return rows


def write_results(
    runs: tuple[PlannedRun, ...], ledger: Ledger, recipe: str, path: Path | None = None
) -> tuple[Path, list[dict]]:
    """Write the table (default `<sweep dir>/results.csv`) atomically; returns its path and rows."""
    path = Path(path) if path is not None else ledger.sweep_dir / "results.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = result_rows(runs, ledger, recipe, path.parent.absolute())
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow((*COLUMNS, *EXTRA_COLUMNS))
        for row in rows:
            writer.writerow([_cell(row[c]) for c in (*COLUMNS, *EXTRA_COLUMNS)])
    tmp.replace(path)
    return path, rows
