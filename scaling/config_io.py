"""Strict mapping of YAML onto frozen dataclasses.

Unknown keys and wrong types are rejected with the list of valid keys, so a typo in a sweep file fails
before any compute is spent instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from scaling.errors import UserError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; researchers write learning rates that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, where)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise UserError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise UserError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _convert(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return _finite(value, where)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return value
    raise UserError(f"{where}: unsupported field type {_type_name(tp)}")


def _finite(value: int | float, where: str) -> float:
    """YAML reads `.inf`, `.nan` and `1e999` as floats; no setting of the lab means anything by them, and an
    infinite learning rate only shows up later as a diverged run."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise UserError(f"{where}: expected a finite number, got {value!r}")
    return number


def from_dict(cls: type[T], mapping: Any, where: str = "config") -> T:
    """Build `cls` from a nested mapping; every key must be a field and every value of the field's type."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise UserError(f"{where}: expected a mapping of keys to values, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise UserError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}; "
            f"valid keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in mapping.items():
        kwargs[name] = _convert(value, hints[name], f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise UserError(f"{where}: {err}") from None
    except ValueError as err:
        raise UserError(f"{where}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Plain-data form of a (nested) dataclass, tuples as lists, ready for YAML/JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def apply_overrides(mapping: dict, overrides: list[str]) -> dict:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a nested mapping copy."""
    result = _deep_copy(mapping)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form dotted.key=value")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = parse_yaml(raw)
    return result


def _deep_copy(mapping: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in mapping.items()}


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line, with the 1-based line and column of the problem where PyYAML has them
    (its own message spans several lines and quotes the text)."""
    problem = getattr(err, "problem", None) or type(err).__name__
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML ({yaml_problem(err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def load_config(cls: type[T], path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> T:
    return from_dict(cls, apply_overrides(load_yaml(path), list(overrides)), where=Path(path).name)


def dump_yaml(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
