"""Guards around a trainer: one per run directory, and preemption turned into a checkpoint (in the loop)
or an immediate exit (during start-up, when there is nothing of this session to checkpoint)."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from scaling import stops
from scaling.errors import RunInUse, UserError
from scaling.train.run_dir import RunDir

# Seconds a SIGTERM during start-up waits for the trainer to reach its next start-up check before the
# process leaves without it (a long compile or tokenization holds the main thread in C code).
STARTUP_GRACE_SECONDS = 3.0
STARTUP_MESSAGE = "interrupted: {} during start-up, before any step of this session; rerun to resume"


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C before the step loop began. A BaseException, like KeyboardInterrupt: it ends the
    process (or an in-process launcher's task) rather than being recorded as a failure."""

    def __init__(self, signum: int):
        super().__init__(startup_message(signum))
        self.signum = signum


def startup_message(signum: int) -> str:
    return STARTUP_MESSAGE.format(stops.describe(signum))


def leave_now(signum: int = signal.SIGTERM, *_) -> None:
    """A stop outside the step loop: run-directory files are written whole (through a rename), so there is
    nothing to save or undo."""
    print(startup_message(signum), file=sys.stderr, flush=True)
    os._exit(128 + signum)


def check_startup(flag: dict) -> None:
    """A start-up check: leave here, between steps of the start-up, if SIGTERM or Ctrl-C came."""
    if flag["stop"]:
        flag["leaving"] = True
        raise Interrupted(flag["signum"])


@contextmanager
def exclusive(run: RunDir, enabled: bool):
    """Hold an advisory lock on the (existing) run directory so two launchers never train the same run."""
    if not enabled:
        yield
        return
    try:
        handle = (run.path / ".lock").open("a+")
    except OSError as err:
        raise UserError(f"cannot lock run directory {run.path}: {err.strerror or err}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUse(f"run directory {run.path} is in use by another training process") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def stop_on_signals():
    """Turn SIGTERM (preemption) and Ctrl-C into a flag: the loop checkpoints and leaves at its next step;
    during start-up (before `flag["looping"]`) `check_startup` leaves at the next check, and a watchdog leaves
    after STARTUP_GRACE_SECONDS if none comes. Start-up reads checkpoints and writes files only whole,
    through a rename, so the run stays resumable either way."""
    import jax

    flag = {"stop": False, "looping": False, "leaving": False, "closed": False, "signum": signal.SIGTERM}
    if not is_main_thread():
        yield flag
        return
    if jax.process_count() > 1:  # no process may stop alone: a stop ends it, as by default
        defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
        previous = {s: signal.signal(s, handler) for s, handler in defaults.items()}
        try:
            yield flag
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    on_stop = lambda signum, _: flag.update(stop=True, signum=signum)  # noqa: E731
    previous = {s: signal.signal(s, on_stop) for s in stops.STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd)  # written even while the main thread runs C code
    threading.Thread(target=_watchdog, args=(read_fd, flag), daemon=True).start()
    try:
        yield flag
    finally:
        flag["closed"] = True  # a watchdog still waiting out a grace period must not leave now
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(write_fd)  # ends the watchdog's read


def _watchdog(read_fd: int, flag: dict) -> None:
    """On a stop during start-up, leave the process if it is still starting after the grace time."""
    try:
        while signals := os.read(read_fd, 64):
            if not set(signals) & set(stops.STOP_SIGNALS) or flag["looping"]:
                continue
            time.sleep(STARTUP_GRACE_SECONDS)
            if not (flag["looping"] or flag["leaving"] or flag["closed"]):
                leave_now(flag["signum"])
    finally:
        os.close(read_fd)


def is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
