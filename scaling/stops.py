"""Ctrl-C and SIGTERM stop every command the same way: as a KeyboardInterrupt, which the CLI turns into one
line and exit code 128 + the signal (the trainer takes both signals over while it runs, to checkpoint).

A KeyboardInterrupt raised by a signal handler can land in a callback whose exceptions Python only prints
("Exception ignored in: <function _xla_gc_callback>"); the interrupt would be lost and the command run on.
The unraisable hook installed here hands such an interrupt back to the main thread instead, a moment later
from a timer thread (at once, the handler would run inside the hook and be lost again). Raised while a
module imports, it can abort the interpreter (an extension module such as jaxlib's half initialised:
SIGABRT or SIGSEGV, no line at all), so during an import the handler hands it on in the same way.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REDELIVER_SECONDS = 0.05  # long enough for the main thread to have left the callback that lost it


def install() -> Callable[[], None]:
    """Route both signals to `KeyboardInterrupt(<signal name>)`; returns what puts the old handlers back."""
    previous = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _later(signal_of(unraisable.exc_value))
            return
        previous_hook(unraisable)

    sys.unraisablehook = hook

    def restore() -> None:
        if sys.unraisablehook is hook:  # a hook chained on ours since (the checkpoint store's) stays
            sys.unraisablehook = previous_hook
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal a KeyboardInterrupt came from: SIGTERM when `_interrupt` says so, else Ctrl-C."""
    return signal.SIGTERM if interrupt.args == (signal.SIGTERM.name,) else signal.SIGINT


def describe(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _interrupt(signum: int, frame) -> None:
    if _importing(frame):
        _later(signum)
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _importing(frame) -> bool:
    """Whether the main thread is inside an import (a frame of importlib's bootstrap on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _later(signum: int) -> None:
    """The signal's handler run again in the main thread a moment from now, from a timer thread."""
    again = threading.Timer(REDELIVER_SECONDS, _thread.interrupt_main, (signum,))
    again.daemon = True
    again.start()
