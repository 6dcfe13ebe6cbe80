"""The launchers' shared records in `<sweep dir>/.sweep/`, kept outside the run directories (which the
trainer owns): a claim lock per run, an append-only event log, failure records, configs and logs.

Claims are `flock`s, so a launcher killed with SIGKILL releases its claims with its last file descriptor;
nothing stale is ever left to clean up. Every write to a run's events happens while holding its claim,
so "read the events, then append" is atomic per run across launchers.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import suppress
from pathlib import Path
from typing import IO

from scaling.config_io import dump_yaml
from scaling.errors import UserError
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import atomic_write_text


class Claim:
    """An exclusive, non-blocking hold on one run; `release()` (or process death) ends it."""

    def __init__(self, handle: IO[str]):
        self._handle = handle

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def try_flock(path: Path) -> IO[str] | None:
    """Open `path` and take an exclusive flock without waiting; None when someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def trainer_lock_free(run_dir: Path) -> bool:
    """Whether no trainer holds `run_dir/.lock` (the lock `scaling.train.loop.train` takes)."""
    lock = run_dir / ".lock"
    if not lock.exists():
        return True
    handle = try_flock(lock)
    if handle is None:
        return False
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()
    return True


class Ledger:
    def __init__(self, sweep_dir: Path):
        self.sweep_dir = Path(sweep_dir)
        self.root = self.sweep_dir / ".sweep"
        self.events_path = self.root / "events.jsonl"

    def run_dir(self, name: str) -> Path:
        return self.sweep_dir / name

    def config_path(self, name: str) -> Path:
        return self.root / "configs" / f"{name}.yaml"

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def _failure_path(self, name: str) -> Path:
        return self.root / "failures" / f"{name}.json"

    def _claim_path(self, name: str) -> Path:
        return self.root / "claims" / f"{name}.lock"

    def try_claim(self, name: str) -> Claim | None:
        handle = try_flock(self._claim_path(name))
        return None if handle is None else Claim(handle)

    def is_claimed(self, name: str) -> bool:
        """Whether a launcher holds the run; asking creates nothing (status and validate write no files)."""
        if not self._claim_path(name).exists():
            return False
        claim = self.try_claim(name)
        if claim is None:
            return True
        claim.release()
        return False

    def write_config(self, config: RunConfig) -> Path:
        path = self.config_path(config.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        dump_yaml(config, tmp)
        tmp.replace(path)
        return path

    def record(self, name: str, event: str, **fields) -> None:
        """Append one event line in a single write (O_APPEND keeps concurrent launchers' lines whole)."""
        self.root.mkdir(parents=True, exist_ok=True)
        row = {"time": time.time(), "run": name, "event": event, "host": socket.gethostname()}
        row.update(pid=os.getpid(), **fields)
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(row) + "\n").encode())
        finally:
            os.close(fd)

    def events(self, name: str | None = None) -> list[dict]:
        if not self.events_path.exists():
            return []
        rows = []
        for line in self.events_path.read_text().splitlines():
            with suppress(json.JSONDecodeError):
                row = json.loads(line)
                if name is None or row["run"] == name:
                    rows.append(row)
        return rows

    def record_failure(self, name: str, status: str, reason: str) -> None:
        path = self._failure_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"status": status, "reason": reason, "time": time.time()})
        atomic_write_text(path, text + "\n")

    def failure(self, name: str) -> dict | None:
        path = self._failure_path(name)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(
                f"{path} is not valid JSON ({err}); delete it (the run is then retried as if it never failed)"
            ) from None

    def clear_failure(self, name: str) -> None:
        self._failure_path(name).unlink(missing_ok=True)
