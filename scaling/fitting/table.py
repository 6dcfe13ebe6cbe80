"""Read a results table into validated float64 arrays: the only place the fitter touches input files.

Sources: a CSV, JSONL or Parquet file (e.g. `results.csv` from `scaling sweep collect`, or a published table
with its own column names, mapped by `ColumnMap`), or a sweep directory, read from every `**/summary.json`.
Which parameter count (`total` or `nonembedding`) and which FLOPs (`exact` column or `6nd`) are explicit
choices, returned with the table so the fit can record them. Bad values never reach an optimiser: NaN, inf,
zero or negative numbers, missing columns and ambiguous duplicates raise `UserError`; skipped runs and
dropped duplicate rows are announced with a `FitWarning`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from scaling.errors import UserError
from scaling.records import FINAL_LOSS

ParamsKind = Literal["total", "nonembedding"]
FlopsKind = Literal["exact", "6nd"]


class FitWarning(UserWarning):
    """Something the user must know about the data or the fit (skipped runs, boundary optimum, ...)."""


@dataclass(frozen=True)
class ColumnMap:
    """Column names in the input table (defaults: the `results.csv` written by `scaling sweep collect`)."""

    name: str = "name"
    status: str = "status"
    params: str = "params"
    params_nonembedding: str = "params_nonembedding"
    tokens: str = "tokens"
    flops: str = "flops"
    loss: str = "loss"
    run_dir: str = "run_dir"
    budget: str = "budget"


@dataclass(frozen=True)
class TableSpec:
    """How to read a table; recorded in FIT.json so `scaling plot` can reload the same runs."""

    source: str
    columns: ColumnMap = field(default_factory=ColumnMap)
    params: ParamsKind = "nonembedding"
    flops: FlopsKind = "exact"
    statuses: tuple[str, ...] = ("completed",)
    drop_invalid: bool = False


@dataclass(frozen=True, eq=False)
class RunTable:
    """One row per run: N (the chosen parameter count), D tokens, C FLOPs (chosen convention), L loss."""

    spec: TableSpec
    names: tuple[str, ...]
    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    L: np.ndarray
    run_dirs: tuple[str | None, ...]
    budget: np.ndarray | None
    sha256: str

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, mask: np.ndarray) -> RunTable:
        idx = np.flatnonzero(mask)
        return replace(
            self,
            names=tuple(self.names[i] for i in idx),
            N=self.N[idx],
            D=self.D[idx],
            C=self.C[idx],
            L=self.L[idx],
            run_dirs=tuple(self.run_dirs[i] for i in idx),
            budget=None if self.budget is None else self.budget[idx],
        )

    def named(self, names) -> RunTable:
        """The runs whose names are in `names`, in table order."""
        wanted = set(names)
        return self.subset(np.array([n in wanted for n in self.names], dtype=bool))

    @property
    def flops_per_param_token(self) -> float:
        """C / (N D) of the table (6 under the 6ND convention): converts a budget into N·D for allocation."""
        return float(np.median(self.C / (self.N * self.D)))


def _read_frame(source: Path) -> tuple[pd.DataFrame, bytes]:
    if source.is_dir():
        paths = sorted(source.glob("**/summary.json"))
        if not paths:
            raise UserError(f"{source} holds no run directories (no summary.json below it)")
        rows, blobs = [], []
        for path in paths:
            blob = path.read_bytes()
            try:
                summary = json.loads(blob)
            except json.JSONDecodeError as err:
                raise UserError(f"{path} is not valid JSON: {err}") from None
            if not isinstance(summary, dict):
                raise UserError(f"{path}: expected a JSON object")
            row = {"name": path.parent.name, **summary, "run_dir": str(path.parent)}
            row.setdefault("loss", summary.get(FINAL_LOSS))
            rows.append(row)
            blobs.append(str(path.relative_to(source)).encode() + b"\0" + blob)
        return pd.DataFrame(rows), b"\0".join(blobs)
    if not source.is_file():
        raise UserError(f"results table {source} does not exist")
    blob = source.read_bytes()
    suffix = source.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(source)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(source, lines=True)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(source)
        else:
            raise UserError(f"{source}: unknown table format {suffix!r}; use .csv, .jsonl or .parquet")
    except (ValueError, pd.errors.ParserError, OSError) as err:
        raise UserError(f"cannot read {source}: {err}") from None
    return frame, blob


def _numeric(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = frame[column].notna().to_numpy() & np.isnan(values)
    if bad.any():
        example = frame[column][bad].iloc[0]
        raise UserError(f"column {column!r} ({what}) has non-numeric values, e.g. {example!r}")
    return values


def _require(frame: pd.DataFrame, column: str, what: str, option: str) -> None:
    if column not in frame.columns:
        raise UserError(
            f"the table has no {what} column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
            f"name it with {option}"
        )


def _filter_status(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    column = spec.columns.status
    if column not in frame.columns:
        return frame
    status = frame[column].astype(str)
    keep = status.isin(spec.statuses).to_numpy()
    if not keep.all():
        counts = status[~keep].value_counts()
        listing = ", ".join(f"{count} {name}" for name, count in counts.items())
        if not keep.any():
            raise UserError(
                f"no runs have status {'/'.join(spec.statuses)} (the table has {listing}); "
                "choose statuses with --status"
            )
        warnings.warn(
            f"skipped {int((~keep).sum())} of {len(frame)} runs by status ({listing}); "
            f"only {'/'.join(spec.statuses)} runs are fitted",
            FitWarning,
            stacklevel=3,
        )
    return frame[keep]


def _check_values(names: np.ndarray, arrays: dict[str, np.ndarray], drop: bool) -> np.ndarray:
    """Mask of valid rows; bad rows are an error unless `drop`, then a warning."""
    bad = np.zeros(len(names), dtype=bool)
    reasons = []
    for what, values in arrays.items():
        nonfinite = ~np.isfinite(values)
        nonpositive = np.isfinite(values) & (values <= 0)
        if nonfinite.any():
            reasons.append(f"{what} is NaN/inf/missing in {int(nonfinite.sum())}")
        if nonpositive.any():
            reasons.append(f"{what} is zero or negative in {int(nonpositive.sum())}")
        bad |= nonfinite | nonpositive
    if not bad.any():
        return ~bad
    example = ", ".join(map(str, names[bad][:5]))
    message = f"{int(bad.sum())} rows have invalid values ({'; '.join(reasons)}; e.g. {example})"
    if not drop:
        raise UserError(f"{message}: fix the table, or pass --drop-invalid to skip those rows")
    warnings.warn(f"dropped {message}", FitWarning, stacklevel=3)
    return ~bad


def load_table(
    source: str | Path,
    columns: ColumnMap | None = None,
    params: ParamsKind = "nonembedding",
    flops: FlopsKind = "exact",
    statuses: tuple[str, ...] = ("completed",),
    drop_invalid: bool = False,
) -> RunTable:
    """Read and validate a results table (file or sweep directory); see the module docstring."""
    spec = TableSpec(
        source=str(Path(source).absolute()),
        columns=columns or ColumnMap(),
        params=params,
        flops=flops,
        statuses=tuple(statuses),
        drop_invalid=drop_invalid,
    )
    return load_spec(spec)


def load_spec(spec: TableSpec) -> RunTable:
    if spec.params not in ("total", "nonembedding"):
        raise UserError(f"params convention must be 'total' or 'nonembedding', not {spec.params!r}")
    if spec.flops not in ("exact", "6nd"):
        raise UserError(f"flops convention must be 'exact' or '6nd', not {spec.flops!r}")
    source = Path(spec.source)
    frame, blob = _read_frame(source)
    cols = spec.columns
    params_col = cols.params if spec.params == "total" else cols.params_nonembedding
    params_opt = "--params-col" if spec.params == "total" else "--params-nonembedding-col (or --params total)"
    _require(frame, params_col, f"{spec.params} parameter count", params_opt)
    _require(frame, cols.tokens, "tokens", "--tokens-col")
    _require(frame, cols.loss, "loss", "--loss-col")
    if spec.flops == "exact":
        _require(frame, cols.flops, "FLOPs", "--flops-col (or --flops 6nd)")
    frame = _filter_status(frame, spec)
    if frame.empty:
        raise UserError(f"{source}: no runs left to fit")
    names = (
        frame[cols.name].astype(str).to_numpy()
        if cols.name in frame.columns
        else np.array([f"row {i}" for i in frame.index])
    )
    arrays = {
        "params": _numeric(frame, params_col, "parameters"),
        "tokens": _numeric(frame, cols.tokens, "tokens"),
        "loss": _numeric(frame, cols.loss, "loss"),
    }
    if spec.flops == "exact":
        arrays["flops"] = _numeric(frame, cols.flops, "FLOPs")
    valid = _check_values(names, arrays, spec.drop_invalid)
    frame, names = frame[valid], names[valid]
    arrays = {k: v[valid] for k, v in arrays.items()}
    keep = _check_duplicates(names, arrays)
    frame, names = frame[keep], names[keep]
    arrays = {k: v[keep] for k, v in arrays.items()}
    if len(names) == 0:
        raise UserError(f"{source}: no valid runs left to fit")
    n, d = arrays["params"], arrays["tokens"]
    run_dirs = _run_dirs(frame, cols.run_dir, source)
    budget = _numeric(frame, cols.budget, "budget") if cols.budget in frame.columns else None
    if budget is not None and not np.all(np.isfinite(budget) & (budget > 0)):
        budget = None
    return RunTable(
        spec=spec,
        names=tuple(names),
        N=n,
        D=d,
        C=arrays["flops"] if spec.flops == "exact" else 6.0 * n * d,
        L=arrays["loss"],
        run_dirs=run_dirs,
        budget=budget,
        sha256=hashlib.sha256(blob).hexdigest(),
    )


def _check_duplicates(names: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Rows with identical numbers would count twice: keep the first, with a warning (two real runs never
    agree in loss to 16 digits). One name with two different results is ambiguous: error."""
    frame = pd.DataFrame({"name": names, **arrays})
    repeated = frame.duplicated(subset=list(arrays), keep="first").to_numpy()
    clash = frame[~repeated].duplicated(subset="name", keep=False).to_numpy()
    if clash.any():
        clashing = sorted(set(frame[~repeated]["name"][clash]))
        raise UserError(
            f"{len(clashing)} run names appear with different results (e.g. {', '.join(clashing[:3])}); "
            "remove the stale rows"
        )
    if repeated.any():
        warnings.warn(
            f"dropped {int(repeated.sum())} duplicate rows (same numbers as another row), "
            f"e.g. {names[repeated][0]}",
            FitWarning,
            stacklevel=3,
        )
    return ~repeated


def _run_dirs(frame: pd.DataFrame, column: str, source: Path) -> tuple[str | None, ...]:
    """Run directories, resolved against the table's folder when relative (as `results.csv` writes them)."""
    if column not in frame.columns:
        return (None,) * len(frame)
    base = source if source.is_dir() else source.parent
    out = []
    for value in frame[column]:
        if not isinstance(value, str) or not value:
            out.append(None)
            continue
        path = Path(value)
        out.append(str(path if path.is_absolute() else (base / path)))
    return tuple(out)


def frontier_mask(C: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Runs with a lower loss than every run of smaller (or equal, listed earlier) compute."""
    order = np.lexsort((L, C))
    mask = np.zeros(C.size, dtype=bool)
    best = np.inf
    for i in order:
        if L[i] < best:
            mask[i] = True
            best = L[i]
    return mask
