"""Strict config loading: the rules every YAML file of the lab goes through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from scaling.config_io import apply_overrides, from_dict, parse_yaml, to_dict
from scaling.errors import UserError


@dataclass(frozen=True)
class Inner:
    count: int = 1
    mode: Literal["a", "b"] = "a"
    pair: tuple[float, int] = (0.5, 2)
    sizes: tuple[int, ...] = ()
    scale: float | None = None


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    name: str = "x"


def test_nested_values_are_converted_by_field_type():
    cfg = from_dict(Outer, {"inner": {"count": 3, "pair": [1, 4], "sizes": [1, 2], "scale": 2}})
    assert cfg == Outer(Inner(count=3, pair=(1.0, 4), sizes=(1, 2), scale=2.0))
    assert isinstance(cfg.inner.pair[0], float) and isinstance(cfg.inner.pair[1], int)
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"inner": {"cuont": 1}}, "unknown key cuont; valid keys: count, mode, pair, sizes, scale"),
        ({"inner": {"count": "3"}}, "config.inner.count: expected an integer, got '3'"),
        ({"inner": {"count": True}}, "config.inner.count: expected an integer, got True"),
        ({"inner": {"mode": "c"}}, "config.inner.mode: 'c' is not one of ['a', 'b']"),
        ({"inner": {"pair": [1, 2, 3]}}, "config.inner.pair: expected 2 items, got 3"),
        ({"inner": {"pair": [1, 2.5]}}, "config.inner.pair[1]: expected an integer, got 2.5"),
        ({"inner": 5}, "config.inner: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(mapping, message):
    with pytest.raises(UserError) as err:
        from_dict(Outer, mapping)
    assert message in str(err.value)


def test_overrides_parse_yaml_values_and_leave_the_input_alone():
    assert parse_yaml("lr: 3e-4\nsteps: 1e3\nname: 1e3x") == {"lr": 3e-4, "steps": 1000.0, "name": "1e3x"}
    base = {"inner": {"count": 1}}
    out = apply_overrides(base, ["inner.count=7", "inner.scale=1e-3", "name=run"])
    assert out == {"inner": {"count": 7, "scale": 1e-3}, "name": "run"}
    assert base == {"inner": {"count": 1}}
    with pytest.raises(UserError, match=r"dotted\.key=value"):
        apply_overrides(base, ["inner.count"])
