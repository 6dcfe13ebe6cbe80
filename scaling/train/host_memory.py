"""Keep freed host memory in the process, so a CPU step does not page-fault its buffers in anew each time.

XLA:CPU allocates a step's temporaries (hundreds of MB at V=8192: the logits, their exponentials and
gradient, attention scores) with malloc on every execution and frees them after. glibc serves blocks that
large from fresh mmaps, or from per-thread arenas it trims, so each step touched ~560 MB of new pages: 143k
page faults, ~30% of a D=64 step on one core. One arena that never maps nor trims reuses the same pages
every step, at the cost of the process keeping its peak heap until it exits: the trainer's step (dispatched
while the last one still runs) settled at two copies of its temporaries, host RSS 1.6 GB against 1.1 GB
with glibc's defaults at D=64, V=8192, batch 16, then faulted no more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER = -1  # as M_TRIM_THRESHOLD: never trim (mallopt(3))


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse freed memory: one arena, no mmap for large blocks, no trim.

    Call it before JAX starts its CPU client, whose threads would otherwise take arenas of their own. A
    no-op returning False where the C library has no `mallopt` (not glibc) or refuses a setting, or where
    `SCALING_SYSTEM_MALLOC=1` asks for glibc's defaults (a host that must hand memory back between steps).
    """
    if os.environ.get("SCALING_SYSTEM_MALLOC") == "1":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER))
    return all(mallopt(param, value) == 1 for param, value in settings)
