"""Is a fit identified by its data? The checks that keep a degenerate optimum from being read as a law.

A multi-start fit always returns *some* optimum; on a ladder too narrow or too noisy for the law, that
optimum sits where the data do not pin it: the irreducible loss E driven to 0, an exponent of 40, a
coefficient of 1e143, or bootstrap refits scattered over orders of magnitude. Such a fit still
interpolates its own runs, but its extrapolation means nothing, so it is flagged (FIT.json
`diagnostics.identified`, the reasons in `diagnostics.unidentified`) and `scaling predict` refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_EXPONENT = 3.0
MAX_COEFFICIENT = 1e30
MIN_E_FRACTION = 0.01  # E below 1% of the smallest observed loss: E -> 0
MAX_E_RATIO = 10.0  # E's bootstrap interval spanning more than a factor of 10
MAX_COEFFICIENT_RATIO = 1e4  # coefficients trade off against their exponents, so only beyond 4 decades
MAX_FAILED_BOOTSTRAP = 0.1
MIN_INTERIOR_BUDGETS = 3  # N_opt(C) = k C^a from fewer located minima is a line through 2 points

_EXPONENTS = {
    "chinchilla": ("alpha", "beta"),
    "compute": ("alpha",),
    "isoflop": ("a", "b", "alpha"),
    "envelope": ("a", "b", "alpha"),
    "kaplan": ("alpha_N", "alpha_D"),
}
_COEFFICIENTS = {
    "chinchilla": ("A", "B"),
    "compute": ("A",),
    "isoflop": ("k_N", "k_D", "A"),
    "envelope": ("k_N", "k_D", "A"),
    "kaplan": ("N_c", "D_c"),
}
_ADVICE = {
    "chinchilla": "add compute budgets (a wider range of N and D) and sizes on both sides of each budget's "
    "optimum",
    "compute": "add compute budgets: the frontier must span more orders of magnitude of compute",
    "isoflop": "add budgets, and at least 3 sizes bracketing each budget's optimum",
    "envelope": "add budgets, and runs long enough to cross each other's curves",
    "kaplan": "add model sizes and token budgets over a wider range",
}


@dataclass(frozen=True)
class Identification:
    problems: tuple[str, ...]
    advice: str

    @property
    def identified(self) -> bool:
        return not self.problems

    def message(self) -> str:
        return f"the fit is not identified by the data ({'; '.join(self.problems)}): {self.advice}"


def identify(
    law: str,
    params: dict[str, float],
    intervals: dict[str, tuple[float, float]],
    diagnostics: dict,
    min_loss: float,
) -> Identification:
    """Every reason the fit's optimum is not pinned down by its runs (empty when it is)."""
    problems = [
        *_parameter_problems(law, params, min_loss),
        *_interval_problems(law, intervals),
        *_optimizer_problems(diagnostics),
        *_profile_problems(diagnostics),
    ]
    return Identification(tuple(problems), _ADVICE[law])


def _parameter_problems(law: str, params: dict[str, float], min_loss: float) -> list[str]:
    problems = []
    for name in _EXPONENTS[law]:
        value = params.get(name, float("nan"))
        if np.isfinite(value) and not 0 < value <= MAX_EXPONENT:
            problems.append(f"exponent {name} = {value:.3g} outside (0, {MAX_EXPONENT:g}]")
    for name in _COEFFICIENTS[law]:
        value = params.get(name, float("nan"))
        if name in params and not (np.isfinite(value) and 0 < value < MAX_COEFFICIENT):
            problems.append(f"{name} = {value:.3g} overflows")
    e = params.get("E", float("nan"))
    if law in ("chinchilla", "compute") and not e >= MIN_E_FRACTION * min_loss:
        problems.append(f"E = {e:.3g} -> 0 (below {MIN_E_FRACTION:.0%} of the smallest loss)")
    return problems


def _interval_problems(law: str, intervals: dict[str, tuple[float, float]]) -> list[str]:
    problems = []
    limits = {"E": MAX_E_RATIO, **dict.fromkeys(_COEFFICIENTS[law], MAX_COEFFICIENT_RATIO)}
    for name, limit in limits.items():
        lo, hi = intervals.get(name, (float("nan"), float("nan")))
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= 0:
            continue
        if lo <= 0 or hi / lo > limit:
            problems.append(
                f"the bootstrap interval of {name} ({lo:.3g} to {hi:.3g}) is over {limit:g}x wide"
            )
    return problems


def _profile_problems(diagnostics: dict) -> list[str]:
    """IsoFLOP fits: a minimum outside its budget's sizes is the parabola's guess, not a measured optimum,
    and a sizing law through fewer than 3 measured optima cannot be checked against anything."""
    interior = diagnostics.get("interior_budgets")
    if interior is None or interior >= MIN_INTERIOR_BUDGETS:
        return []
    return [
        f"only {interior} of {diagnostics['budgets']} budgets have their minimum inside their sampled sizes "
        f"(at least {MIN_INTERIOR_BUDGETS} needed)"
    ]


def _optimizer_problems(diagnostics: dict) -> list[str]:
    """Failed refits: the grid-of-starts flags stay warnings (a start grid is not a bound on the law)."""
    problems = []
    boot = diagnostics.get("bootstrap") or 0
    failed = diagnostics.get("bootstrap_failed") or 0
    if boot and failed > MAX_FAILED_BOOTSTRAP * boot:
        problems.append(f"{failed} of {boot} bootstrap refits failed")
    return problems
