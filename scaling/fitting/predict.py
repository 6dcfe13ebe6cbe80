"""Predictions from a fit, with bootstrap percentile intervals.

    fit = FitResult.load("fit.json")
    predict(fit, params=7e10, tokens=1.4e12)   # loss of a given model and data size (chinchilla, kaplan)
    predict_compute(fit, compute=5.76e23)      # compute-optimal N, D and their loss

An interval is the central percentile range of the same prediction made with every bootstrap refit: the
uncertainty of the fitted law, not the run-to-run noise of a single training run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.errors import UserError
from scaling.fitting import laws
from scaling.fitting.bootstrap import percentile_interval
from scaling.fitting.result import FitResult


@dataclass(frozen=True)
class Prediction:
    loss: float | None
    interval: tuple[float, float] | None
    params: float | None = None
    params_interval: tuple[float, float] | None = None
    tokens: float | None = None
    tokens_interval: tuple[float, float] | None = None
    compute: float | None = None
    extrapolation: float | None = None  # compute over the largest fitted run's (None if FIT.json lacks it)
    fitted_compute: tuple[float, float] | None = None  # smallest and largest fitted run's compute

    def to_dict(self) -> dict:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None
        }


def _interval(fit: FitResult, fn) -> tuple[float, float] | None:
    samples = fit.sample_arrays()
    if not samples or not next(iter(samples.values())).size:
        return None
    with np.errstate(all="ignore"):
        return percentile_interval(fn(samples), fit.confidence)


def _positive(name: str, value: float | None) -> float:
    if value is None or not np.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive number, not {value}")
    return float(value)


FAR_BELOW = 100.0  # a question 100x below the smallest fitted run is refused: the law is not for it


def _extrapolation(fit: FitResult, compute: float, force: bool) -> dict:
    """How far `compute` lies beyond the fitted runs (Prediction fields); refuses far below them unless
    `force`."""
    low_high = fit.table.get("compute_range")
    if not low_high:
        return {}
    low, high = low_high
    if compute < low / FAR_BELOW and not force:
        raise UserError(
            f"{compute:.3g} FLOPs is {low / compute:.3g}x below the smallest fitted run ({low:.3g}): the "
            "law says nothing there (pass --force to extrapolate anyway)"
        )
    return {"extrapolation": compute / high, "fitted_compute": (float(low), float(high))}


def loss_fn(fit: FitResult):
    """The fit's loss as a function (params dict, N, D), or None for laws without an L(N, D)."""
    if fit.law == "chinchilla":
        return laws.chinchilla_loss
    if fit.law == "kaplan":
        return laws.kaplan_loss
    return None


def predict(fit: FitResult, params: float, tokens: float, force: bool = False) -> Prediction:
    """Loss of a model with `params` parameters (the fit's parameter convention) trained on `tokens`.
    An unidentified fit is refused unless `force`."""
    fit.require_identified(force)
    n, d = _positive("--params", params), _positive("--tokens", tokens)
    fn = loss_fn(fit)
    if fn is None:
        raise UserError(
            f"a {fit.law} fit has no L(N, D); use --compute C, or fit --law chinchilla for --params/--tokens"
        )
    compute = n * d * float(fit.conventions.get("flops_per_param_token", 6.0))
    return Prediction(
        loss=_finite_loss(fn, fit.params, n, d),
        interval=_interval(fit, lambda s: fn(s, n, d)),
        params=n,
        tokens=d,
        compute=compute,
        **_extrapolation(fit, compute, force),
    )


def _no_loss_law(fit: FitResult) -> bool:
    """IsoFLOP and envelope fits with fewer than 3 usable budgets have allocation laws but no L_opt(C)."""
    return fit.law in ("isoflop", "envelope") and bool(np.isnan(fit.params["E"]))


def _finite_loss(fn, *args) -> float:
    """The point prediction; an overflow (a question absurdly far out, forced) is an error, not `inf`."""
    with np.errstate(all="ignore"):
        value = float(fn(*args))
    if not np.isfinite(value):
        raise UserError(f"the fitted law gives a loss of {value} there: the question is too far out")
    return value


def predict_compute(fit: FitResult, compute: float, force: bool = False) -> Prediction:
    """Compute-optimal allocation for `compute` FLOPs (the fit's FLOPs convention) and its loss.
    An unidentified fit is refused unless `force`."""
    fit.require_identified(force)
    c = _positive("--compute", compute)
    p = fit.params
    if fit.law == "chinchilla":
        k = float(fit.conventions.get("flops_per_param_token", 6.0))

        def alloc(q):
            return laws.chinchilla_optimal(q, c, k)

        def loss(q):
            return laws.chinchilla_loss(q, *laws.chinchilla_optimal(q, c, k))
    elif fit.law in ("isoflop", "envelope"):

        def alloc(q):
            return laws.allocation(q, c)

        def loss(q):
            return laws.compute_loss(q, c)
    elif fit.law == "compute":
        alloc = None

        def loss(q):
            return laws.compute_loss(q, c)
    else:
        raise UserError("a kaplan fit gives no compute-optimal allocation; use --params and --tokens")
    extrapolation = _extrapolation(fit, c, force)
    point_loss = None if _no_loss_law(fit) else _finite_loss(loss, p)
    out = {"loss": point_loss, "compute": c, **extrapolation}
    out["interval"] = _interval(fit, loss) if point_loss is not None else None
    if alloc is not None:
        n, d = alloc(p)
        out.update(
            params=float(n),
            tokens=float(d),
            params_interval=_interval(fit, lambda s: alloc(s)[0]),
            tokens_interval=_interval(fit, lambda s: alloc(s)[1]),
        )
    return Prediction(**out)
