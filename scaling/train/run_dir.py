"""The files a run leaves behind, written so that a kill at any moment loses nothing already recorded:
`config.yaml` (the resolved config), `metrics.jsonl` (one row per logged step), `summary.json` and
`checkpoints/` (rows and summary are typed in `scaling.records`). Whole-file writes go through a temporary
file and a rename."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from scaling.errors import UserError
from scaling.records import METRICS_FILE, SUMMARY_FILE, RunSummary, json_line, read_metrics, read_summary

# How a run is laid out on devices, not what it computes: a run may resume under another mesh or
# micro-batching without being a different run.
PLACEMENT_KEYS = ("mesh.", "train.micro_batches")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(mapping, dict):
        return {prefix: mapping}
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / METRICS_FILE
        self.summary_path = self.path / SUMMARY_FILE
        self.checkpoint_dir = self.path / "checkpoints"

    def claim(self, config: dict) -> None:
        """Create the directory for `config`, or check that an existing one was made for the same config."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {self.path} exists and is not a directory")
        if self.config_path.exists():
            try:
                existing = yaml.safe_load(self.config_path.read_text())
            except yaml.YAMLError as err:
                raise UserError(f"{self.config_path} is not valid YAML ({err}); fix or remove it") from None
            old, new = _flatten(existing), _flatten(config)
            differing = sorted(
                key
                for key in set(old) | set(new)
                if old.get(key) != new.get(key) and not key.startswith(PLACEMENT_KEYS)
            )
            if differing:
                raise UserError(
                    f"run directory {self.path} belongs to a different config (differs in: "
                    f"{', '.join(differing[:8])}{'...' if len(differing) > 8 else ''}); "
                    f"choose another --out directory"
                )
            if old != new:
                atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))
            return
        if self.path.is_dir() and any(p.name != ".lock" for p in self.path.iterdir()):
            raise UserError(f"{self.path} is not empty and holds no config.yaml: not a run directory of ours")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict:
        if not self.config_path.is_file():
            raise UserError(f"{self.path} is not a run directory: it has no config.yaml")
        return yaml.safe_load(self.config_path.read_text())

    def metrics(self) -> list[dict]:
        return read_metrics(self.metrics_path)

    def truncate_metrics(self, last_step: int) -> None:
        """Drop rows logged after `last_step` (work done after the checkpoint that a resume starts from)."""
        kept = [row for row in self.metrics() if row["step"] <= last_step]
        atomic_write_text(self.metrics_path, "".join(json_line(row) for row in kept))

    def append_metrics(self, row: dict) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json_line(row))

    def write_summary(self, summary: RunSummary) -> None:
        atomic_write_text(self.summary_path, summary.to_json() + "\n")

    def summary(self) -> RunSummary | None:
        return read_summary(self.summary_path)
