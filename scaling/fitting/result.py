"""`FitResult`: what every law's fit returns and what FIT.json holds (exact floats, never rounded).

JSON keeps Python's shortest round-trip float repr, so `FitResult.load(path)` gives back bit-identical
parameters. Bootstrap samples are stored so `scaling predict` can give intervals for any new point.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import UserError
from scaling.fitting.fit_schema import LAW_PARAMS, check_fit

LAWS = tuple(LAW_PARAMS)


@dataclass(frozen=True)
class FitResult:
    """A fitted law.

    params: point estimates under the papers' names (e.g. E, A, B, alpha, beta; plus a, b, G for chinchilla).
    intervals: percentile bootstrap intervals (at `confidence`) of the same names.
    samples: bootstrap estimates, one list per name (empty when bootstrap was off).
    objective: the minimised objective (sum of Huber losses for chinchilla/compute/kaplan; None otherwise).
    conventions: parameter count, FLOPs convention, C/(N D), loss column, Huber delta, points used, ...
    diagnostics: grid size, converged starts, boundary flags, warnings.
    table: source path, column mapping and sha256 of the input.
    extra: law-specific data for plots (IsoFLOP minima per budget, envelope points, ...).
    """

    law: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    samples: dict[str, list[float]]
    objective: float | None
    n_runs: int
    confidence: float
    conventions: dict[str, Any]
    diagnostics: dict[str, Any]
    table: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def identified(self) -> bool:
        """False when `scaling fit` flagged the optimum as not pinned down by the data (identify.py)."""
        return bool(self.diagnostics.get("identified", True))

    def require_identified(self, force: bool = False) -> None:
        """Refuse to extrapolate an unidentified fit unless `force`."""
        if self.identified or force:
            return
        reasons = "; ".join(self.diagnostics.get("unidentified", ())) or "flagged by the fit"
        raise UserError(
            f"this {self.law} fit is not identified by its runs ({reasons}); its predictions mean "
            f"nothing: {self.diagnostics.get('advice') or 'add runs'} (or pass --force)"
        )

    def sample_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.samples.items()}

    def to_json(self) -> str:
        return json.dumps(_plain(asdict(self)), indent=1, allow_nan=True)

    def save(self, path: str | Path) -> Path:
        """Write atomically: a failed write leaves whatever was at `path` (and no temporary file)."""
        path = Path(path)
        if path.is_dir():
            raise UserError(f"--out {path} is a directory; give a file name such as {path / 'fit.json'}")
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(self.to_json() + "\n")
            tmp.replace(path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write {path}: {err.strerror}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a FIT.json; anything but a usable one is a `UserError` naming the file and field."""
        path = Path(path)
        if path.is_dir():
            raise UserError(
                f"{path} is a directory, not a FIT.json (give the file `scaling fit --out` wrote)"
            )
        if not path.is_file():
            raise UserError(f"fit file {path} does not exist (make it with `scaling fit TABLE --out {path}`)")
        try:
            data = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(
                f"{path} is not JSON ({err}); give the FIT.json written by `scaling fit`"
            ) from None
        except OSError as err:
            raise UserError(f"cannot read {path}: {err.strerror}") from None
        data = check_fit(str(path), data)
        data["intervals"] = {
            k: tuple(np.nan if v is None else v for v in pair) for k, pair in data["intervals"].items()
        }
        return cls(**data)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj
