"""What a FIT.json must hold, checked when it is read.

A truncated, hand-edited or foreign file must fail on load with one line naming the file, the field and the
fix, not later as a `KeyError: 'E'` inside a formula or as a NaN prediction with exit status 0. Each law's
parameters carry the constraint its formulas need (exponents and coefficients positive, E >= 0); IsoFLOP and
envelope fits may lack a loss law (E, A, alpha all NaN when fewer than 3 budgets were usable).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaling.errors import UserError


@dataclass(frozen=True)
class Constraint:
    what: str  # "positive", for the message
    holds: Callable[[float], bool]


POSITIVE = Constraint("positive", lambda v: 0.0 < v < math.inf)
NONNEGATIVE = Constraint(">= 0", lambda v: 0.0 <= v < math.inf)
FINITE = Constraint("finite", math.isfinite)


@dataclass(frozen=True)
class LawParams:
    """The parameters a law's predictions use; `loss_law` ones may be NaN together (no L_opt(C) law)."""

    required: tuple[tuple[str, Constraint], ...]
    loss_law: tuple[tuple[str, Constraint], ...] = ()


_LOSS_LAW = (("E", NONNEGATIVE), ("A", POSITIVE), ("alpha", POSITIVE))
_ALLOCATION = (("a", FINITE), ("b", FINITE), ("k_N", POSITIVE), ("k_D", POSITIVE))
LAW_PARAMS = {
    "chinchilla": LawParams((*_LOSS_LAW, ("B", POSITIVE), ("beta", POSITIVE))),
    "compute": LawParams(_LOSS_LAW),
    "isoflop": LawParams(_ALLOCATION, _LOSS_LAW),
    "envelope": LawParams(_ALLOCATION, _LOSS_LAW),
    "kaplan": LawParams(tuple((k, POSITIVE) for k in ("alpha_N", "N_c", "alpha_D", "D_c"))),
}

# Top-level fields and their JSON types (extra is optional).
_FIELDS: dict[str, tuple[type, ...]] = {
    "law": (str,),
    "params": (dict,),
    "intervals": (dict,),
    "samples": (dict,),
    "objective": (int, float, type(None)),
    "n_runs": (int,),
    "confidence": (int, float),
    "conventions": (dict,),
    "diagnostics": (dict,),
    "table": (dict,),
    "extra": (dict,),
}
_TYPE_NAMES = {str: "text", dict: "an object", int: "a number", float: "a number", type(None): "null"}


def check_fit(path: str, data: Any) -> dict[str, Any]:
    """`data` (parsed JSON) if it is a usable FIT.json, else `UserError` naming the field and the fix."""
    refit = f"write it again with `scaling fit TABLE --out {path}`"
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {_json_type(data)}, not a FIT.json object; {refit}")
    for key in dict.fromkeys(("law", "params", *_FIELDS)):  # law and parameters first: likeliest edited
        if key not in data and key != "extra":
            raise UserError(f"{path}: field {key!r} is missing; {refit}")
        _check_type(path, key, data.get(key, {}), refit)
        if key == "law" and data["law"] not in LAW_PARAMS:
            raise UserError(
                f"{path}: field 'law' is {data['law']!r}, not one of {', '.join(LAW_PARAMS)}; {refit}"
            )
        if key == "params":
            _check_params(path, data["law"], data["params"], refit)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise UserError(f"{path}: unknown field {unknown[0]!r}; remove it, or {refit}")
    if not 0.0 < data["confidence"] < 1.0:
        raise UserError(f"{path}: field 'confidence' is {data['confidence']!r}, not between 0 and 1; {refit}")
    _check_samples(path, data["samples"], data["intervals"], refit)
    _check_conventions(path, data["conventions"], data["table"], refit)
    return data


def _check_type(path: str, key: str, value: Any, refit: str) -> None:
    types = _FIELDS[key]
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(dict.fromkeys(_TYPE_NAMES[t] for t in types))
        raise UserError(f"{path}: field {key!r} is {_json_type(value)}, not {wanted}; {refit}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return f"number ({value!r})"
    names = {dict: "object", list: "list", str: "text", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_params(path: str, law: str, params: dict, refit: str) -> None:
    spec = LAW_PARAMS[law]
    for name, value in params.items():
        if not _is_number(value):
            raise UserError(f"{path}: parameter {name!r} is {_json_type(value)}, not a number; {refit}")
    no_loss_law = all(math.isnan(params.get(k, 0.0)) for k, _ in spec.loss_law) and bool(spec.loss_law)
    rules = spec.required if no_loss_law else (*spec.required, *spec.loss_law)
    for name, rule in rules:
        if name not in params:
            raise UserError(f"{path}: the {law} parameter {name!r} is missing; {refit}")
        if not rule.holds(params[name]):
            raise UserError(
                f"{path}: the {law} parameter {name!r} is {params[name]!r}, it must be {rule.what}; "
                f"fix the file or {refit}"
            )


def _check_samples(path: str, samples: dict, intervals: dict, refit: str) -> None:
    for name, pair in intervals.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(v is None or _is_number(v) for v in pair)):
            raise UserError(f"{path}: intervals[{name!r}] is not a [low, high] pair of numbers; {refit}")
    sizes = set()
    for name, values in samples.items():
        if not isinstance(values, list) or not all(v is None or _is_number(v) for v in values):
            raise UserError(f"{path}: samples[{name!r}] is not a list of numbers; {refit}")
        sizes.add(len(values))
    if len(sizes) > 1:
        raise UserError(f"{path}: the bootstrap samples have different lengths {sorted(sizes)}; {refit}")


def _check_conventions(path: str, conventions: dict, table: dict, refit: str) -> None:
    k = conventions.get("flops_per_param_token", 6.0)
    if not _is_number(k) or not POSITIVE.holds(k):
        raise UserError(f"{path}: conventions.flops_per_param_token is {k!r}, not a positive number; {refit}")
    span = table.get("compute_range")
    if span is None:
        return
    if not (
        isinstance(span, list)
        and len(span) == 2
        and all(_is_number(v) and POSITIVE.holds(v) for v in span)
        and span[0] <= span[1]
    ):
        raise UserError(f"{path}: table.compute_range is {span!r}, not [smallest, largest] FLOPs; {refit}")
