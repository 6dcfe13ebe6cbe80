"""Batched L-BFGS in JAX: thousands of small problems (one start, or one bootstrap resample each) at once.

Why not `jax.vmap(optax.lbfgs)`: under `vmap` optax's zoom line search runs until the slowest problem of
the batch is done, so every iteration pays several objective evaluations for all problems; on a 2-core CPU
the 4500-start Chinchilla grid took minutes. Here each loop step costs exactly one batched
value-and-gradient evaluation: a problem whose trial point fails the Armijo test keeps its point and shrinks
its step for the next evaluation, while the others move on; finished problems are frozen. The loop runs in
jitted chunks of steps, so progress can be shown between them.

`value_and_grad(x_SxP, data) -> (f_S, g_SxP)` must be a pure JAX function; `data` is a dict of arrays that
either broadcast over problems or carry a leading problem axis (e.g. bootstrap weights). Everything runs in
float64 under the `jax.enable_x64` context, without touching the process-wide flag.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Per-problem status codes.
RUNNING, GTOL, FTOL, STALLED, MAX_EVALS = 0, 1, 2, 3, 4
STATUS_NAMES = {RUNNING: "running", GTOL: "gtol", FTOL: "ftol", STALLED: "stalled", MAX_EVALS: "max_evals"}

_ARMIJO_C1 = 1e-4
_MIN_STEP = 1e-20


@dataclass(frozen=True)
class LbfgsOptions:
    """Stopping rules. A problem stops at max|grad| <= gtol, or when an accepted step lowers f by at most
    ftol * |f|, or when not even a steepest-descent step of length ~1e-20 lowers f (numerical minimum)."""

    max_evals: int = 2000
    gtol: float = 1e-9
    ftol: float = 1e-13
    memory: int = 10
    chunk: int = 40


@dataclass(frozen=True)
class LbfgsResult:
    x: np.ndarray  # (S, P) final points
    f: np.ndarray  # (S,) objective at x
    grad_max: np.ndarray  # (S,) max |gradient| at x
    evals: np.ndarray  # (S,) objective evaluations used
    status: np.ndarray  # (S,) status code, see STATUS_NAMES

    @property
    def converged(self) -> np.ndarray:
        return (self.status == GTOL) | (self.status == FTOL) | (self.status == STALLED)


def _two_loop(g, s_mem, y_mem, rho, count, memory):
    """Direction -H g from the per-problem memories (newest pair at index 0, `count` pairs valid)."""
    q = g
    alphas = []
    for j in range(memory):
        valid = (j < count)[:, None]
        a = jnp.where(valid[:, 0], rho[:, j] * jnp.sum(s_mem[:, j] * q, axis=1), 0.0)
        q = q - a[:, None] * y_mem[:, j] * valid
        alphas.append((a, valid))
    s0, y0 = s_mem[:, 0], y_mem[:, 0]
    gamma = jnp.where(count > 0, jnp.sum(s0 * y0, axis=1) / jnp.sum(y0 * y0, axis=1), 1.0)
    z = q * gamma[:, None]
    for j in reversed(range(memory)):
        a, valid = alphas[j]
        b = rho[:, j] * jnp.sum(y_mem[:, j] * z, axis=1)
        z = z + (a - b)[:, None] * s_mem[:, j] * valid
    return -z


def _push(mem, new):
    """Newest entry first; the oldest falls off the end."""
    return jnp.concatenate([new[:, None], mem[:, :-1]], axis=1)


def _steepest(g):
    """Steepest descent of unit length: the first step of a problem, or after a reset."""
    norm = jnp.sqrt(jnp.sum(g * g, axis=1, keepdims=True))
    return -g / jnp.maximum(norm, 1e-300)


def _init_state(x0, f0, g0, memory):
    s, p = x0.shape
    status = jnp.where(jnp.max(jnp.abs(g0), axis=1) == 0.0, GTOL, RUNNING)
    status = jnp.where(jnp.isfinite(f0), status, STALLED)
    return {
        "x": x0,
        "f": f0,
        "g": g0,
        "d": _steepest(g0),
        "t": jnp.ones(s),
        "s_mem": jnp.zeros((s, memory, p)),
        "y_mem": jnp.zeros((s, memory, p)),
        "rho": jnp.zeros((s, memory)),
        "count": jnp.zeros(s, jnp.int32),
        "evals": jnp.ones(s, jnp.int32),
        "status": status.astype(jnp.int32),
    }


def _step(state, data, tol, vg, memory: int):
    x, f, g, d, t = state["x"], state["f"], state["g"], state["d"], state["t"]
    active = state["status"] == RUNNING
    x_trial = x + t[:, None] * d
    f_trial, g_trial = vg(x_trial, data)
    gd = jnp.sum(g * d, axis=1)
    finite = jnp.isfinite(f_trial) & jnp.all(jnp.isfinite(g_trial), axis=1)
    accept = active & finite & (f_trial <= f + _ARMIJO_C1 * t * gd)
    reject = active & ~accept

    # Rejected: shrink the step by safeguarded quadratic interpolation (halve after a non-finite trial).
    denom = 2.0 * (f_trial - f - gd * t)
    t_quad = jnp.where(denom > 0, -gd * t * t / jnp.where(denom > 0, denom, 1.0), 0.5 * t)
    t_shrunk = jnp.where(finite, jnp.clip(t_quad, 0.1 * t, 0.5 * t), 0.5 * t)
    # A failed search with curvature memory is retried once as steepest descent with fresh memory.
    tiny = reject & (t_shrunk * jnp.sqrt(jnp.sum(d * d, axis=1)) < _MIN_STEP)
    reset = tiny & (state["count"] > 0)
    stalled = tiny & (state["count"] == 0)

    # Accepted: store the curvature pair if it is positive, then the next L-BFGS direction.
    s_new = x_trial - x
    y_new = g_trial - g
    sy = jnp.sum(s_new * y_new, axis=1)
    keep_pair = accept & (sy > 1e-12 * jnp.sum(y_new * y_new, axis=1))
    shift = keep_pair[:, None]
    s_mem = jnp.where(shift[:, :, None], _push(state["s_mem"], s_new), state["s_mem"])
    y_mem = jnp.where(shift[:, :, None], _push(state["y_mem"], y_new), state["y_mem"])
    rho = jnp.where(shift, _push(state["rho"], 1.0 / jnp.where(keep_pair, sy, 1.0)), state["rho"])
    count = jnp.where(keep_pair, jnp.minimum(state["count"] + 1, memory), state["count"])
    count = jnp.where(reset, 0, count)

    x_next = jnp.where(accept[:, None], x_trial, x)
    f_next = jnp.where(accept, f_trial, f)
    g_next = jnp.where(accept[:, None], g_trial, g)
    d_lbfgs = _two_loop(g_next, s_mem, y_mem, rho, count, memory)
    descent = jnp.sum(d_lbfgs * g_next, axis=1) < 0
    d_accept = jnp.where((descent & (count > 0))[:, None], d_lbfgs, _steepest(g_next))
    d_next = jnp.where(accept[:, None], d_accept, jnp.where(reset[:, None], _steepest(g), d))
    t_next = jnp.where(accept | reset, 1.0, jnp.where(reject, t_shrunk, t))

    gmax = jnp.max(jnp.abs(g_next), axis=1)
    small_decrease = accept & (f - f_trial <= tol["ftol"] * jnp.maximum(jnp.abs(f), 1e-300))
    status = state["status"]
    status = jnp.where(accept & (gmax <= tol["gtol"]), GTOL, status)
    status = jnp.where((status == RUNNING) & small_decrease, FTOL, status)
    status = jnp.where(stalled, STALLED, status)
    evals = state["evals"] + active.astype(jnp.int32)
    status = jnp.where((status == RUNNING) & (evals >= tol["max_evals"]), MAX_EVALS, status)
    return {
        "x": x_next,
        "f": f_next,
        "g": g_next,
        "d": d_next,
        "t": t_next,
        "s_mem": s_mem,
        "y_mem": y_mem,
        "rho": rho,
        "count": count,
        "evals": evals,
        "status": status.astype(jnp.int32),
    }


def _blank_state(size: int, n_params: int, memory: int) -> dict:
    """A batch of empty slots, all frozen, so the first `_refill` starts problems in them (built on the host:
    eager JAX ops would compile a kernel each)."""
    floats = {
        "x": (size, n_params),
        "f": (size,),
        "g": (size, n_params),
        "d": (size, n_params),
        "t": (size,),
        "s_mem": (size, memory, n_params),
        "y_mem": (size, memory, n_params),
        "rho": (size, memory),
    }
    state = {k: np.zeros(shape) for k, shape in floats.items()}
    state.update(count=np.zeros(size, np.int32), evals=np.zeros(size, np.int32))
    state["status"] = np.full(size, STALLED, np.int32)
    return {k: jnp.asarray(v) for k, v in state.items()}


@functools.partial(jax.jit, static_argnames=("vg", "memory"))
def _refill(state, fresh, x0, own, new_own, data, vg, memory: int):
    """Start the problems of the `fresh` slots from `x0` with their data `new_own`; other slots go on."""
    own = {k: jnp.where(_rows(fresh, v), new_own[k], v) for k, v in own.items()}
    f0, g0 = vg(x0, {**data, **own})
    new = _init_state(x0, f0, g0, memory)
    return {k: jnp.where(_rows(fresh, v), new[k], v) for k, v in state.items()}, own


def _rows(mask, like):
    """`mask` (S,) shaped to broadcast over an (S, ...) array."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


@functools.partial(jax.jit, static_argnames=("vg", "memory", "chunk"))
def _chunk(state, data, tol, vg, memory: int, chunk: int):
    """Up to `chunk` steps; stops early once at most `tol["floor"]` problems are still running."""

    def cond(carry):
        i, st = carry
        return (i < chunk) & (jnp.sum(st["status"] == RUNNING) > tol["floor"])

    def body(carry):
        i, st = carry
        return i + 1, _step(st, data, tol, vg, memory)

    return jax.lax.while_loop(cond, body, (0, state))[1]


RowsFn = Callable[[int, int], dict[str, np.ndarray]]


def minimize(
    vg: Callable[[Any, Any], tuple[Any, Any]],
    x0: np.ndarray,
    data: dict[str, Any],
    opts: LbfgsOptions = LbfgsOptions(),
    progress: str | None = None,
    batch: int | None = None,
    rows: RowsFn | None = None,
) -> LbfgsResult:
    """Minimise S problems from the rows of `x0` (S, P). `data` is shared by all problems; `rows(i, j)`, if
    given, returns the per-problem data of problems i..j-1 (arrays with that leading axis, e.g. bootstrap
    weights), asked for in order, so it can be generated as it is consumed. `vg` gets their union and must
    be a module-level function (a static jit argument). `progress` labels a tqdm bar on stderr.

    `batch` slots (default S) hold problems; once half of them have finished, queued problems take their
    places. The batch keeps one shape (every distinct shape costs an XLA compilation, ~2 s of CPU here),
    memory is bounded by `batch` instead of S, and few slots idle while the slowest problems finish. Slots
    beyond S stay frozen. A problem's path does not depend on its slot or on the other problems, except that
    XLA's CPU exp and log can differ in the last bit between batch shapes (then results agree to the
    stopping tolerances, not bit for bit)."""
    x0 = np.asarray(x0, dtype=np.float64)
    size = x0.shape[0] if batch is None else int(batch)
    queue = _Queue(x0, rows, size)
    bar = _progress_bar(progress, x0.shape[0])
    with jax.enable_x64(True):
        data = {k: jnp.asarray(v, jnp.float64) for k, v in data.items()}
        tol = {
            "gtol": jnp.float64(opts.gtol),
            "ftol": jnp.float64(opts.ftol),
            "max_evals": jnp.int32(opts.max_evals),
        }
        state, own = _blank_state(size, x0.shape[1], opts.memory), queue.blank_rows()
        finished = np.ones(size, dtype=bool)
        while True:
            if queue.waiting and finished.sum() >= size - size // 2:
                queue.harvest(finished, state)
                fresh, x_fresh, new_own = queue.start(finished)
                state, own = _refill(state, fresh, x_fresh, own, new_own, data, vg, opts.memory)
            tol["floor"] = jnp.int32(size // 2 if queue.waiting else 0)
            state = _chunk(state, {**data, **own}, tol, vg, opts.memory, opts.chunk)
            finished = np.asarray(state["status"]) != RUNNING
            done = queue.done(finished)
            if bar is not None:
                bar.update(done - bar.n)
            if done == x0.shape[0]:
                break
        queue.harvest(finished, state)
    if bar is not None:
        bar.close()
    return queue.result()


class _Queue:
    """Host bookkeeping of `minimize`: which problem each slot holds, what is still queued, the results."""

    def __init__(self, x0: np.ndarray, rows: RowsFn | None, size: int):
        self.x0, self.rows, self.size = x0, rows, size
        self.slot = np.full(size, -1)  # problem held by each slot; -1: none (empty, or harvested)
        self.queued = 0  # next problem to start
        self.harvested = 0
        n, p = x0.shape
        self.out = {
            "x": np.zeros((n, p)),
            "f": np.zeros(n),
            "g": np.zeros((n, p)),
            "evals": np.zeros(n, np.int32),
            "status": np.zeros(n, np.int32),
        }

    @property
    def waiting(self) -> bool:
        return self.queued < self.x0.shape[0]

    def blank_rows(self) -> dict[str, Any]:
        """Device arrays for the per-problem data of every slot (zeros until problems start there)."""
        if self.rows is None:
            return {}
        first = self.rows(0, 0)
        return {k: jnp.asarray(np.zeros((self.size, *np.shape(v)[1:]))) for k, v in first.items()}

    def start(self, free: np.ndarray) -> tuple:
        """Queued problems into the `free` slots: (fresh slot mask, x0, per-problem data) for `_refill`."""
        take = np.flatnonzero(free)[: self.x0.shape[0] - self.queued]
        problems = np.arange(self.queued, self.queued + take.size)
        self.slot[take] = problems
        self.queued += take.size
        fresh = np.zeros(self.size, dtype=bool)
        fresh[take] = True
        x0 = np.repeat(self.x0[:1], self.size, axis=0)
        x0[take] = self.x0[problems]
        new_own = {}
        if self.rows is not None:
            for k, v in self.rows(self.queued - take.size, self.queued).items():
                full = np.zeros((self.size, *np.shape(v)[1:]))
                full[take] = v
                new_own[k] = jnp.asarray(full)
        return jnp.asarray(fresh), jnp.asarray(x0), new_own

    def harvest(self, finished: np.ndarray, state: dict) -> None:
        """Copy the results of finished slots that hold a problem; those slots are free afterwards."""
        pick = np.flatnonzero(finished & (self.slot >= 0))
        if not pick.size:
            return
        for k, out in self.out.items():
            out[self.slot[pick]] = np.asarray(state[k])[pick]
        self.harvested += pick.size
        self.slot[pick] = -1

    def done(self, finished: np.ndarray) -> int:
        return self.harvested + int(np.sum(finished & (self.slot >= 0)))

    def result(self) -> LbfgsResult:
        out = self.out
        return LbfgsResult(
            x=out["x"],
            f=out["f"],
            grad_max=np.max(np.abs(out["g"]), axis=1),
            evals=out["evals"],
            status=out["status"],
        )


def _progress_bar(label: str | None, total: int):
    if label is None:
        return None
    from scaling.console import progress_bar

    return progress_bar(total=total, desc=label, unit="fit", leave=False)
