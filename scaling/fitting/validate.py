"""Validation: fit each law on the ladder only, predict every target run, score against what it reached.

    rows = validate(ladder_table, target_table, laws=("chinchilla", "compute"), options=FitOptions())
    rows[0].median_are, rows[0].coverage

Laws of N and D (chinchilla, kaplan) predict each target at its real N and D; laws of compute (compute,
isoflop, envelope) predict the compute-optimal loss at its real C, the question a target sized by the
ladder's fit asks. A law that cannot be fitted to the ladder is reported with its one-line reason.

An interval here is a prediction interval for one run: each bootstrap refit's prediction times the
exponential of a log residual of the point fit on the ladder, drawn at random, so it holds both the law's
uncertainty and the scatter of single runs about the law that the ladder itself shows.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from scaling.errors import UserError
from scaling.fitting import laws
from scaling.fitting.bootstrap import percentile_interval
from scaling.fitting.fit import FitOptions, fit_table
from scaling.fitting.predict import loss_fn
from scaling.fitting.result import FitResult
from scaling.fitting.table import FitWarning, RunTable, frontier_mask

VALIDATED_LAWS = ("chinchilla", "compute", "isoflop", "kaplan")


@dataclass(frozen=True)
class ValidationRow:
    law: str
    name: str
    compute: float
    extrapolation: float  # target compute over the largest ladder run's
    predicted: float
    interval: tuple[float, float] | None
    actual: float
    are: float  # absolute relative error, a fraction
    inside: bool | None  # actual within the interval (None without one)


@dataclass(frozen=True)
class LawValidation:
    law: str
    rows: tuple[ValidationRow, ...]
    confidence: float
    identified: bool = True
    error: str = ""  # why the law could not be fitted to the ladder ("" when it was)
    fit: FitResult | None = None

    @property
    def median_are(self) -> float:
        return float(np.median([r.are for r in self.rows])) if self.rows else float("nan")

    @property
    def coverage(self) -> float:
        inside = [r.inside for r in self.rows if r.inside is not None]
        return float(np.mean(inside)) if inside else float("nan")


def validate(
    ladder: RunTable,
    targets: RunTable,
    laws_to_fit: tuple[str, ...] = VALIDATED_LAWS,
    options: FitOptions | None = None,
) -> tuple[LawValidation, ...]:
    """Every law in `laws_to_fit`, fitted on `ladder` and scored on `targets` (rows in target order)."""
    if not len(ladder):
        raise UserError("no completed ladder runs to fit")
    if not len(targets):
        raise UserError("no completed target runs to validate against")
    opts = options or FitOptions(confidence=0.8, progress=False)
    return tuple(_validate_law(ladder, targets, law, opts) for law in laws_to_fit)


def _validate_law(ladder: RunTable, targets: RunTable, law: str, opts: FitOptions) -> LawValidation:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            fit = fit_table(ladder, law, opts)
        point, samples = _predictions(fit, targets)
    except UserError as err:
        return LawValidation(law, (), opts.confidence, identified=False, error=str(err))
    if not np.all(np.isfinite(point)):
        return LawValidation(
            law, (), opts.confidence, False, "the fit gives no finite loss at the targets", fit
        )
    residuals = _ladder_residuals(fit, ladder)
    rng = np.random.default_rng(opts.seed)
    largest = float(ladder.C.max())
    rows = []
    for i, name in enumerate(targets.names):
        interval = _interval(samples[:, i] if samples is not None else None, residuals, rng, opts.confidence)
        actual = float(targets.L[i])
        rows.append(
            ValidationRow(
                law=law,
                name=name,
                compute=float(targets.C[i]),
                extrapolation=float(targets.C[i] / largest),
                predicted=float(point[i]),
                interval=interval,
                actual=actual,
                are=abs(float(point[i]) - actual) / actual,
                inside=None if interval is None else bool(interval[0] <= actual <= interval[1]),
            )
        )
    return LawValidation(law, tuple(rows), opts.confidence, fit.identified, "", fit)


def _predictions(fit: FitResult, table: RunTable) -> tuple[np.ndarray, np.ndarray | None]:
    """Point predictions (T,) and bootstrap predictions (B, T) at the runs of `table`."""
    fn = loss_fn(fit)
    samples = fit.sample_arrays()
    has_samples = bool(samples) and next(iter(samples.values())).size > 0
    with np.errstate(all="ignore"):
        if fn is not None:
            point = fn(fit.params, table.N, table.D)
            boot = fn({k: v[:, None] for k, v in samples.items()}, table.N, table.D) if has_samples else None
        else:
            if not np.isfinite(fit.params.get("E", np.nan)):
                raise UserError(f"the {fit.law} fit has no loss law L(C) (too few budgets)")
            point = laws.compute_loss(fit.params, table.C)
            boot = (
                laws.compute_loss({k: v[:, None] for k, v in samples.items()}, table.C)
                if has_samples
                else None
            )
    return np.asarray(point, np.float64), boot


def _ladder_residuals(fit: FitResult, ladder: RunTable) -> np.ndarray:
    """Log residuals of the point fit on the ladder runs a law of its kind describes (all runs for L(N, D);
    the compute-efficient frontier for L(C))."""
    table = ladder if loss_fn(fit) is not None else ladder.subset(frontier_mask(ladder.C, ladder.L))
    point, _ = _predictions(dataclasses.replace(fit, samples={}), table)
    residuals = np.log(table.L) - np.log(point)
    return residuals[np.isfinite(residuals)]


def _interval(boot, residuals, rng, confidence: float) -> tuple[float, float] | None:
    if boot is None:
        return None
    boot = boot[np.isfinite(boot) & (boot > 0)]
    if not boot.size:
        return None
    noise = rng.choice(residuals, size=boot.size) if residuals.size else np.zeros(boot.size)
    lo, hi = percentile_interval(boot * np.exp(noise), confidence)
    return lo, hi
