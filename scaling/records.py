"""What a run leaves behind, typed once: its summary (`summary.json`) and its metric rows (`metrics.jsonl`).

The trainer writes them; the sweep launcher, status and collector and the fitter's table reader read them
through this module, so every key is spelt here. It imports nothing else of the lab, so the analysis wing
reads runs without model or training code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.errors import UserError

SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
# The summary key a run is fitted by (its final validation loss).
FINAL_LOSS = "final_val_loss"

# One row per logged step, in this order; evaluation rows add "val_loss".
METRIC_COLUMNS = (
    "step",
    "tokens",
    "flops",
    "train_loss",
    "lr",
    "grad_norm",
    "update_norm",
    "tokens_per_second",
    "mfu",
)


@dataclass(frozen=True)
class RunSummary:
    """A run's record. status: completed, diverged, interrupted or failed (a checkpoint or metrics write
    failed; only completed counts as done); params/tokens/flops: exact counts
    (flops = tokens x flops_per_token, flops_6nd the 6N cross-check); losses None until measured; the
    *_seconds timings are this session's start-up costs (None when the session did not reach them);
    epochs None in summaries written before it was recorded."""

    name: str
    status: str
    steps: int
    params: int
    params_nonembedding: int
    params_embedding: int
    tokens: int
    flops: int
    flops_6nd: int
    flops_per_token: int
    final_train_loss: float | None
    final_val_loss: float | None
    wall_seconds: float
    step_seconds: float
    state_seconds: float | None
    compile_seconds: float | None
    startup_seconds: float | None
    tokens_per_second: float | None
    mfu: float | None
    peak_flops_source: str
    encoding: str
    vocab_size: int
    data_fingerprint: str
    devices: int
    processes: int
    epochs: float | None = None  # tokens over the corpus's training tokens: > 1 means repeated data

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_json(self) -> str:
        """JSON with non-finite floats as null (a diverged run's loss)."""
        return json.dumps({k: _json_safe(v) for k, v in dataclasses.asdict(self).items()}, indent=2)

    @classmethod
    def from_mapping(cls, data: Any, where: str) -> RunSummary:
        """From a parsed summary.json; a missing key is a one-line error naming the file."""
        if not isinstance(data, dict):
            raise UserError(f"{where} is not a run summary (expected a JSON object)")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [
            k
            for k in names
            if k not in data and k not in ("state_seconds", "compile_seconds", "startup_seconds", "epochs")
        ]
        if missing:
            raise UserError(f"{where} is not a summary written by `scaling train`: no {', '.join(missing)}")
        return cls(**{k: data.get(k) for k in names})


def read_summary(path: Path) -> RunSummary | None:
    """The summary at `path`, None if there is none yet; a damaged file is a one-line error."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); delete it and rerun to rewrite it") from None
    return RunSummary.from_mapping(data, str(path))


def read_metrics(path: Path) -> list[dict]:
    """The logged rows. A last line cut short by a kill is dropped (nothing after it was recorded); a bad
    line before the last is damage, not a kill, and is a one-line error rather than a silent loss of the
    rows after it."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise UserError(
                f"{path}:{number} is not valid JSON, with {len(lines) - number} rows after it: repair or "
                "remove that line (a kill only ever cuts the last one)"
            ) from None
    return rows


def json_line(row: dict) -> str:
    return json.dumps({k: _json_safe(v) for k, v in row.items()}) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
