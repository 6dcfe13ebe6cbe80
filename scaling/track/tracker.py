"""The tracker a run logs to: the writers its `track:` section asks for, behind one `Tracker` protocol.

Tracking is bookkeeping beside the run directory, which stays the record: a writer that fails (W&B
online without a network, a full disk) is dropped with one warning and the run goes on. Each step is
logged once across resumes: `track.json` in the run directory keeps the last step logged (and the W&B
run id), so the steps a resume redoes after its checkpoint are not logged again.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from scaling.errors import UserError
from scaling.track.config import TrackConfig

log = logging.getLogger(__name__)

STATE_FILE = "track.json"
INSTALL = "pip install 'scaling[track]'"


class Tracker(Protocol):
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def summary(self, values: Mapping[str, Any]) -> None: ...

    def image(self, name: str, path: Path, step: int) -> None: ...

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None: ...

    def close(self) -> None: ...


class Tracking:
    """What a run logs to. This base logs nothing: tracking off, or not the main process."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def summary(self, values: Mapping[str, Any]) -> None:
        pass

    def image(self, name: str, path: Path, step: int) -> None:
        pass

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


NO_TRACKING = Tracking()


def check_installed(cfg: TrackConfig) -> None:
    """Before any compute is spent: a one-line error when a writer's package is missing."""
    wanted = {"tensorboardX": cfg.tensorboard is not False, "wandb": cfg.wandb.enabled}
    for package, needed in wanted.items():
        if needed and importlib.util.find_spec(package) is None:
            key = "track.tensorboard" if package == "tensorboardX" else "track.wandb.enabled"
            raise UserError(f"{key} needs the {package} package, which is not installed: {INSTALL}")


class RunTracker(Tracking):
    """The writers of one run directory, opened at the first call that logs (a run that never logs
    leaves no trace), each step logged once however often the run resumes."""

    def __init__(self, openers: dict[str, Callable[[str], Tracker]], state_dir: Path):
        self.openers = openers
        self.state_path = state_dir / STATE_FILE
        self.state = _read_state(self.state_path)
        self.writers: dict[str, Tracker] | None = None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if step <= self.state["logged_step"]:
            return
        values = {k: v for k, v in metrics.items() if k != "step" and v is not None}
        self._each("log", step, values)
        self.state["logged_step"] = step
        self._save()

    def summary(self, values: Mapping[str, Any]) -> None:
        self._each("summary", values)

    def image(self, name: str, path: Path, step: int) -> None:
        """Logged with the step's metrics: call it before `log` of the same step."""
        if step > self.state["logged_step"]:
            self._each("image", name, path, step)

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        """Logged with the step's metrics: call it before `log` of the same step."""
        if step > self.state["logged_step"]:
            self._each("table", name, columns, rows, step)

    def close(self) -> None:
        for name in list(self.writers or ()):
            self._call(name, "close")
        self.writers = None

    def _each(self, method: str, *args: Any) -> None:
        if self.writers is None:
            self._open()
        for name in list(self.writers or ()):
            self._call(name, method, *args)

    def _open(self) -> None:
        if "wandb" in self.openers:
            self.state.setdefault("wandb_id", uuid.uuid4().hex[:16])
            self._save()
        self.writers = {}
        for name, opener in self.openers.items():
            try:
                self.writers[name] = opener(self.state.get("wandb_id", ""))
            except Exception as err:
                log.warning("%s: could not start (%s); not logging there", name, _one_line(err))

    def _call(self, name: str, method: str, *args: Any) -> None:
        assert self.writers is not None
        try:
            getattr(self.writers[name], method)(*args)
        except Exception as err:
            log.warning("%s: %s failed (%s); not logging there any more", name, method, _one_line(err))
            del self.writers[name]

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".{STATE_FILE}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.state) + "\n")
        os.replace(tmp, self.state_path)


def _read_state(path: Path) -> dict:
    """The saved state; an unreadable file (a kill mid-write cannot make one) starts over, with a warning."""
    if not path.exists():
        return {"logged_step": 0}
    try:
        state = json.loads(path.read_text())
        if isinstance(state, dict) and isinstance(state.get("logged_step"), int):
            return state
    except json.JSONDecodeError:
        pass
    log.warning("%s is not a tracking state file; tracking starts a new W&B run from step 0", path)
    return {"logged_step": 0}


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def open_tracker(
    cfg: TrackConfig, run_dir: Path, name: str, config: dict, *, job: str = "train", main: bool = True
) -> Tracking:
    """The tracker of the run in `run_dir` (named `name` in TensorBoard roots and W&B); NO_TRACKING when
    tracking is off or on processes other than the main one. Writes nothing until the first call that
    logs; a missing package shows there (`check_installed` says so before the run starts)."""
    if not (cfg.enabled and main):
        return NO_TRACKING
    openers: dict[str, Callable[[str], Tracker]] = {}
    tensorboard = tensorboard_dir(cfg, run_dir, name)
    if tensorboard is not None:
        from scaling.track.tensorboard_tracker import TensorBoardTracker

        openers["tensorboard"] = lambda _id: TensorBoardTracker(tensorboard)
    if cfg.wandb.enabled:
        from scaling.track.wandb_tracker import WandbTracker

        directory = wandb_dir(cfg, run_dir)
        openers["wandb"] = lambda run_id: WandbTracker(cfg.wandb, run_id, name, directory, config, job)
    return RunTracker(openers, run_dir)


def tensorboard_dir(cfg: TrackConfig, run_dir: Path, name: str) -> Path | None:
    """Where the run's event files go: `<run dir>/tensorboard`, or `<root>/<name>` under a shared root."""
    if cfg.tensorboard is False:
        return None
    if cfg.tensorboard is True:
        return run_dir / "tensorboard"
    return run_dir / cfg.tensorboard / name


def wandb_dir(cfg: TrackConfig, run_dir: Path) -> Path | None:
    """The config's directory, else WANDB_DIR's (None: wandb reads it), else the run directory."""
    if cfg.wandb.dir:
        return run_dir / cfg.wandb.dir
    return None if os.environ.get("WANDB_DIR") else run_dir
