"""Guards around a trainer: one per run directory, and preemption turned into a checkpoint."""

from __future__ import annotations

import fcntl
import signal
import threading
from contextlib import contextmanager

import jax

from scaling.errors import RunInUse
from scaling.train.run_dir import RunDir


@contextmanager
def exclusive(run: RunDir, enabled: bool):
    """Hold an advisory lock on the run directory so two launchers never train the same run."""
    if not enabled:
        yield
        return
    run.path.mkdir(parents=True, exist_ok=True)
    with (run.path / ".lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUse(f"run directory {run.path} is in use by another training process") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def stop_on_sigterm():
    """Turn SIGTERM (preemption) into a flag the loop checks, so it checkpoints before leaving."""
    flag = {"stop": False}
    if jax.process_count() > 1 or not is_main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.update(stop=True))
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
