"""`scaling sweep validate`: score every law's predictions of a sweep's targets, fitted on its ladder.

Writes `validation.csv` (one row per law and target), `validation.json` (per law: median ARE, coverage
of the intervals, identification, rows) and `validation.png` in the sweep directory.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.errors import UserError
from scaling.fitting import FitOptions
from scaling.fitting.validate import VALIDATED_LAWS, LawValidation, validate
from scaling.sweep.status import run_state
from scaling.sweep.tracking import track_validation
from scaling.sweep.workflow import Sweep
from scaling.train.run_dir import atomic_write_text

CSV_COLUMNS = (
    "law",
    "target",
    "compute",
    "extrapolation",
    "predicted",
    "lower",
    "upper",
    "actual",
    "are",
    "inside",
    "epochs",
)


@dataclass(frozen=True)
class SweepValidation:
    """Every law's validation, and how many passes over the corpus each target and the ladder made: the
    laws are fitted on runs of fresh data, so a target that repeats its data is not the run they predict."""

    chooser: str  # the law that sized the targets
    results: tuple[LawValidation, ...]
    epochs: dict[str, float | None] = field(default_factory=dict)  # per target
    ladder_epochs: float | None = None  # the most any ladder run made

    def law(self, name: str) -> LawValidation:
        return next(r for r in self.results if r.law == name)

    def summary(self) -> dict:
        chosen = self.law(self.chooser)
        return {
            "law": self.chooser,
            "targets": [_row(r, self.epochs) for r in chosen.rows],
            "median_are": _finite(chosen.median_are),
            "coverage": _finite(chosen.coverage),
            "confidence": chosen.confidence,
            "ladder_epochs": self.ladder_epochs,
            "laws": {r.law: _law(r, self.epochs) for r in self.results},
        }


def run_validation(sweep: Sweep, n_boot: int = 1000, confidence: float = 0.8) -> SweepValidation:
    """Fit every law on the completed ladder, predict the completed targets, write the three files."""
    spec = sweep.spec
    if spec.targets is None:
        raise UserError(f"sweep {spec.name} has no targets: add a targets: section to validate its ladder")
    if not any(run_state(r, sweep.ledger).status == "completed" for r in sweep.target_runs()):
        raise UserError(
            f"no completed targets yet in {sweep.ledger.sweep_dir}: run `scaling sweep run` first"
        )
    ladder, targets = sweep.tables(spec.targets.params)
    options = FitOptions(n_boot=n_boot, confidence=confidence, progress=False)
    laws = validate(ladder, targets, VALIDATED_LAWS, options)
    result = SweepValidation(spec.targets.law, laws, *_epochs(sweep))
    _write(sweep.ledger.sweep_dir, result)
    from scaling.fitting.validation_plot import plot_validation

    figure = plot_validation(ladder, targets, result.results, sweep.ledger.sweep_dir / "validation.png")
    track_validation(sweep, result, (CSV_COLUMNS, csv_rows(result)), figure, len(targets))
    return result


def _epochs(sweep: Sweep) -> tuple[dict[str, float | None], float | None]:
    """Each completed target's passes over the corpus, and the ladder's most (None where unrecorded)."""

    def epochs(runs) -> dict[str, float | None]:
        summaries = {r.name: run_state(r, sweep.ledger).summary for r in runs}
        return {name: s.epochs for name, s in summaries.items() if s is not None and s.completed}

    ladder = [e for e in epochs(sweep.ladder).values() if e is not None]
    return epochs(sweep.target_runs()), max(ladder, default=None)


def _write(folder: Path, result: SweepValidation) -> None:
    atomic_write_text(folder / "validation.json", json.dumps(result.summary(), indent=1) + "\n")
    tmp = folder / ".validation.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result))
    tmp.replace(folder / "validation.csv")


def csv_rows(result: SweepValidation) -> list[tuple]:
    """validation.csv's rows, one per law and target, in `CSV_COLUMNS` order."""
    rows = []
    for law in result.results:
        for r in law.rows:
            lower, upper = r.interval if r.interval else ("", "")
            inside = "" if r.inside is None else r.inside
            row = (law.law, r.name, r.compute, r.extrapolation, r.predicted, lower, upper, r.actual, r.are)
            epochs = result.epochs.get(r.name)
            rows.append((*row, inside, "" if epochs is None else epochs))
    return rows


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _row(r, epochs: dict[str, float | None]) -> dict:
    return {
        "law": r.law,
        "target": r.name,
        "compute": r.compute,
        "extrapolation": r.extrapolation,
        "predicted": r.predicted,
        "interval": list(r.interval) if r.interval else None,
        "actual": r.actual,
        "are": r.are,
        "inside": r.inside,
        "epochs": epochs.get(r.name),
    }


def _law(r: LawValidation, epochs: dict[str, float | None]) -> dict:
    return {
        "median_are": _finite(r.median_are),
        "coverage": _finite(r.coverage),
        "identified": r.identified,
        "error": r.error,
        "unidentified": [] if r.fit is None else r.fit.diagnostics.get("unidentified", []),
        "targets": [_row(row, epochs) for row in r.rows],
    }


def format_validation(result: SweepValidation) -> str:
    """The terminal table: one block per law, a line per target, then median ARE and coverage."""
    lines = []
    for law in result.results:
        chosen = " (sized the targets)" if law.law == result.chooser else ""
        if law.error:
            lines.append(f"{law.law}{chosen}: not fitted: {law.error}")
            continue
        flag = "" if law.identified else "  [NOT IDENTIFIED: its predictions mean little]"
        lines.append(f"{law.law}{chosen}{flag}")
        lines.append(
            f"  {'target':<26} {'C':>9} {'x':>6} {'predicted':>9} {'interval':>17} {'actual':>8} {'ARE':>7}"
        )
        for r in law.rows:
            interval = f"{r.interval[0]:.4f}-{r.interval[1]:.4f}" if r.interval else "-"
            mark = "" if r.inside is None else (" in" if r.inside else " OUT")
            lines.append(
                f"  {r.name[:26]:<26} {r.compute:>9.3g} {r.extrapolation:>6.0f} {r.predicted:>9.4f} "
                f"{interval:>17} {r.actual:>8.4f} {r.are:>7.2%}{mark}"
            )
        lines.append(
            f"  median ARE {law.median_are:.2%}; {law.coverage:.0%} of actual losses inside the "
            f"{law.confidence:.0%} intervals"
        )
    return "\n".join(lines + repeated_data_notes(result))


def repeated_data_notes(result: SweepValidation) -> list[str]:
    """A line for each target that saw its corpus more than once when no ladder run did."""
    if result.ladder_epochs is None or result.ladder_epochs > 1:
        return []
    return [
        f"note: {name} trained {epochs:.2f} epochs of its corpus (ladder runs at most "
        f"{result.ladder_epochs:.2f}); the laws were fitted on fresh data and do not model repetition, "
        "so expect this target to fall short of its prediction (a larger corpus, or an explicit "
        "{params, tokens} target within one epoch, tests the prediction itself)"
        for name, epochs in result.epochs.items()
        if epochs is not None and epochs > 1
    ]
