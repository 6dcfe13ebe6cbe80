"""The files a run leaves behind, written so that a kill at any moment loses nothing already recorded:
`config.yaml` (the resolved config), `metrics.jsonl` (one row per logged step), `summary.json` and
`checkpoints/` (rows and summary are typed in `scaling.records`). Whole-file writes go through a temporary
file and a rename."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from scaling.config_io import yaml_problem
from scaling.errors import UserError
from scaling.records import METRICS_FILE, SUMMARY_FILE, RunSummary, json_line, read_metrics, read_summary

log = logging.getLogger(__name__)

# Metric rows a resume no longer stands behind (logged after its checkpoint) and unreadable lines: kept here.
DROPPED_METRICS_FILE = "metrics.dropped.jsonl"

# How a run is laid out on devices, not what it computes: a run may resume under another mesh or
# micro-batching without being a different run.
PLACEMENT_KEYS = ("mesh.", "train.micro_batches", "model.remat", "model.attention", "model.scan_layers")
# Where a run is reported, not what it computes: tracking may be turned on or moved for a resume.
TRACKING_KEYS = ("track.",)


def os_error_line(err: OSError) -> str:
    """An OSError as `path: reason`, one line."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


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


def differing_keys(old: dict, new: dict, ignore: tuple[str, ...]) -> list[str]:
    """The dotted keys whose values differ between two nested configs, except those under `ignore`."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith(ignore))


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / METRICS_FILE
        self.summary_path = self.path / SUMMARY_FILE
        self.checkpoint_dir = self.path / "checkpoints"
        self.made: list[Path] = []  # the directories `create` made, the run directory first

    def create(self) -> bool:
        """Make the directory; True when nothing of a run was in it, so a start-up that fails may remove
        it again (`discard`). A file in the way or an unwritable place is a one-line error."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {self.path} exists and is not a directory; choose another --out")
        try:
            self.made = [p for p in (self.path, *self.path.parents) if not p.exists()]
            fresh = bool(self.made) or all(p.name == ".lock" for p in self.path.iterdir())
            if not fresh and not self.config_path.exists():
                raise UserError(
                    f"{self.path} is not empty and holds no config.yaml: not a run directory of ours"
                )
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create run directory {self.path}: {err.strerror or err}") from None
        return fresh

    def trained(self) -> bool:
        """Whether the directory holds anything a run produced (metrics, kept-aside rows or checkpoints, a
        summary, a checkpoint)."""
        aside = self.path / DROPPED_METRICS_FILE, self.checkpoint_dir.with_name("checkpoints.corrupt")
        return (
            self.summary_path.exists()
            or any(path.exists() for path in aside)
            or (self.metrics_path.exists() and self.metrics_path.stat().st_size > 0)
            or (self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir()))
        )

    def discard(self) -> None:
        """Remove what a start-up that never trained left in a directory that was empty before it (and
        the directories `create` made, where nothing else has appeared in them since); config.yaml last,
        so an interrupted discard leaves a run directory, not an unknown one. Never raises: it runs while
        another error is on its way out."""
        entries = sorted(self.path.iterdir(), key=lambda p: p == self.config_path)
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        for directory in self.made:
            with contextlib.suppress(OSError):
                directory.rmdir()

    def claim(self, config: dict) -> None:
        """Create the directory for `config`, or check that an existing one was made for the same config;
        one whose run never trained (killed during start-up) is taken over by the new config."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {self.path} exists and is not a directory")
        if self.config_path.exists():
            try:
                existing = yaml.safe_load(self.config_path.read_text())
            except yaml.YAMLError as err:
                raise UserError(
                    f"{self.config_path} is not valid YAML ({yaml_problem(err)}); fix or remove it"
                ) from None
            differing = differing_keys(existing, config, (*PLACEMENT_KEYS, *TRACKING_KEYS))
            if differing and self.trained():
                raise UserError(
                    f"run directory {self.path} belongs to a different config (differs in: "
                    f"{', '.join(differing[:8])}{'...' if len(differing) > 8 else ''}); "
                    f"choose another --out directory"
                )
            if differing:
                log.warning(
                    "%s held the config of a run that never trained; it now holds this one", self.path
                )
            if existing != config:
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
        """Keep the rows up to `last_step`, the checkpoint a resume starts from. Rows after it (work the
        resume redoes) and lines that are not JSON (a kill's cut line, damage) are appended to
        metrics.dropped.jsonl before metrics.jsonl is rewritten, with a warning: a resume never deletes a
        logged row."""
        if not self.metrics_path.exists():
            return
        kept, dropped, unreadable = [], [], 0
        for line in self.metrics_path.read_text().splitlines():
            row = _parse_row(line)
            if row is not None and row["step"] <= last_step:
                kept.append(line + "\n")
            elif line.strip():
                dropped.append(line + "\n")
                unreadable += row is None
        if not dropped:
            return
        aside = self.path / DROPPED_METRICS_FILE
        with aside.open("a") as f:
            f.write("".join(dropped))
        atomic_write_text(self.metrics_path, "".join(kept))
        log.warning(
            "resuming from step %d: moved %d metric rows logged after it%s to %s",
            last_step,
            len(dropped) - unreadable,
            f" and {unreadable} unreadable line{'s' * (unreadable > 1)}" if unreadable else "",
            aside,
        )

    def append_metrics(self, row: dict) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json_line(row))

    def write_summary(self, summary: RunSummary) -> None:
        atomic_write_text(self.summary_path, summary.to_json() + "\n")

    def summary(self) -> RunSummary | None:
        return read_summary(self.summary_path)


def _parse_row(line: str) -> dict | None:
    """A metrics row, or None for a line that is not one."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None
