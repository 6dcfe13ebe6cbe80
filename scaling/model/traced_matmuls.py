"""The matmuls a traced function really performs, read from its jaxpr: an independent check of the FLOP
formulas in ModelConfig, and the list of shapes a benchmark times on their own."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jax
from jax.extend.core import Jaxpr


@dataclass(frozen=True)
class Matmul:
    """One `dot_general`: operand shapes and dtypes, dimension numbers, accumulation dtype."""

    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    lhs_dtype: str
    rhs_dtype: str
    dimension_numbers: Any
    preferred_element_type: str | None

    @property
    def flops(self) -> int:
        """2 x (output size) x (contracted size)."""
        (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = self.dimension_numbers
        lhs_free = [n for d, n in enumerate(self.lhs_shape) if d not in (*lhs_contract, *lhs_batch)]
        rhs_free = [n for d, n in enumerate(self.rhs_shape) if d not in (*rhs_contract, *rhs_batch)]
        batch = math.prod(self.lhs_shape[d] for d in lhs_batch)
        contracted = math.prod(self.lhs_shape[d] for d in lhs_contract)
        return 2 * batch * math.prod(lhs_free) * math.prod(rhs_free) * contracted


def traced_matmuls(jaxpr: Jaxpr) -> Counter[Matmul]:
    """Every dot_general with how often it runs: scan bodies count times their length, other nested jaxprs
    (cond branches, while bodies, remat) once each."""
    found: Counter[Matmul] = Counter()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            lhs, rhs = (v.aval for v in eqn.invars)
            preferred = eqn.params.get("preferred_element_type")
            found[
                Matmul(
                    tuple(lhs.shape),
                    tuple(rhs.shape),
                    str(lhs.dtype),
                    str(rhs.dtype),
                    eqn.params["dimension_numbers"],
                    None if preferred is None else str(preferred),
                )
            ] += 1
        repeats = eqn.params["length"] if eqn.primitive.name == "scan" else 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if isinstance(inner, Jaxpr):
                    for matmul, count in traced_matmuls(inner).items():
                        found[matmul] += repeats * count
    return found


def total_flops(matmuls: Counter[Matmul]) -> int:
    return sum(m.flops * count for m, count in matmuls.items())


def matmuls_of(fn: Any, *args: Any) -> Counter[Matmul]:
    return traced_matmuls(jax.make_jaxpr(fn)(*args).jaxpr)
