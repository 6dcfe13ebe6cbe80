"""`fit_table`: one entry point for every law, used by the CLI and by sweep/demo code.

    from scaling.fitting import load_table, fit_table
    table = load_table("runs/cpu_isoflop/results.csv", params="nonembedding", flops="exact")
    fit = fit_table(table, law="chinchilla", n_boot=1000)
    fit.save("fit.json")

Every fit records how the table was read (source, column mapping, parameter and FLOPs conventions, sha256
of the input) and every warning raised while fitting, so FIT.json alone says what was fitted.
"""

from __future__ import annotations

import dataclasses
import warnings

from scaling.errors import UserError
from scaling.fitting.identify import identify
from scaling.fitting.result import LAWS, FitResult
from scaling.fitting.table import FitWarning, RunTable


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """Knobs shared by the laws (defaults are the published procedures)."""

    n_boot: int = 1000
    confidence: float = 0.95
    seed: int = 0
    points: str = "frontier"  # compute law: "frontier" or "all"
    budget_tolerance: float = 0.25  # isoflop grouping when the table has no budget column
    curve_loss: str = "train_loss"  # envelope: metrics.jsonl key
    smooth: int = 5  # envelope: moving-average window
    progress: bool = True


def fit_table(table: RunTable, law: str = "chinchilla", options: FitOptions | None = None) -> FitResult:
    """Fit `law` to the table; warnings are re-raised to the caller and recorded in the result."""
    opts = options or FitOptions()
    if law not in LAWS:
        raise UserError(f"unknown law {law!r}; choose one of {', '.join(LAWS)}")
    if opts.n_boot < 0:
        raise UserError("the number of bootstrap resamples must be >= 0")
    if not 0.0 < opts.confidence < 1.0:
        raise UserError(f"confidence must be between 0 and 1, not {opts.confidence}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        result = _dispatch(table, law, opts)
        check = identify(law, result.params, result.intervals, result.diagnostics, float(table.L.min()))
        if not check.identified:
            warnings.warn(f"unidentified fit: {check.message()}", FitWarning, stacklevel=2)
    messages = [str(w.message) for w in caught if issubclass(w.category, FitWarning)]
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    spec = table.spec
    return dataclasses.replace(
        result,
        conventions={
            "params": spec.params,
            "flops": spec.flops,
            "loss_column": spec.columns.loss,
            **result.conventions,
        },
        diagnostics={
            **result.diagnostics,
            "identified": check.identified,
            "unidentified": list(check.problems),
            "advice": "" if check.identified else check.advice,
            "warnings": messages,
        },
        table={
            "source": spec.source,
            "sha256": table.sha256,
            "columns": dataclasses.asdict(spec.columns),
            "statuses": list(spec.statuses),
            "drop_invalid": spec.drop_invalid,
            "runs": len(table),
            "compute_range": [float(table.C.min()), float(table.C.max())],
        },
    )


def _dispatch(table: RunTable, law: str, o: FitOptions) -> FitResult:
    common = {"n_boot": o.n_boot, "confidence": o.confidence, "seed": o.seed}
    if law == "chinchilla":
        from scaling.fitting.chinchilla import fit_chinchilla

        return fit_chinchilla(table, progress=o.progress, **common)
    if law == "compute":
        from scaling.fitting.compute_law import fit_compute

        return fit_compute(table, points=o.points, progress=o.progress, **common)
    if law == "kaplan":
        from scaling.fitting.kaplan import fit_kaplan

        return fit_kaplan(table, progress=o.progress, **common)
    if law == "isoflop":
        from scaling.fitting.isoflop import fit_isoflop

        return fit_isoflop(table, tolerance=o.budget_tolerance, progress=o.progress, **common)
    from scaling.fitting.envelope import fit_envelope

    return fit_envelope(table, loss_key=o.curve_loss, smooth=o.smooth, **common)
