"""Orbax checkpoints of the training state, restorable onto any mesh.

Saves are asynchronous. A failed write (a full disk) is found by `check_saved` at the first step after the
background write ends, and by `wait`, which the trainer calls before its summary: either raises
`CheckpointWriteFailed`, orbax having kept the previous checkpoints. `close()` waits on the same manager
that saved, so the final checkpoint is never lost at exit. Restores go through the abstract state of the
*current* layout, so a run saved on 8 devices resumes on 1 and the reverse. Each checkpoint's metadata
names the block layout its parameters hold (`layers`: scanned or unrolled, read off the saved tree); a
restore reads that layout and converts to the current one, so `model.scan_layers` may change on resume.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from scaling.errors import RunFailed, UserError
from scaling.model.layers import Layers, layers_of
from scaling.train.state import StateLayout, relaid

log = logging.getLogger(__name__)


class CheckpointWriteFailed(RunFailed):
    """A checkpoint could not be written; the run stops with status failed."""


class CorruptCheckpoint(UserError):
    """A checkpoint that cannot be read back (truncated or damaged files); `reason` is the root cause."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class CheckpointStore:
    def __init__(self, directory: Path, keep: int, *, read_only: bool = False):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=not read_only, read_only=read_only, enable_async_checkpointing=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        self.saving: int | None = None  # the step whose asynchronous save has not been checked yet
        _quiet_late_tensorstore_reports()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, params: Any, opt_state: Any, meta: dict) -> None:
        self.save_tree(step, {"params": params, "opt_state": opt_state}, meta)

    def save_tree(self, step: int, state: dict, meta: dict) -> None:
        """Save any state tree that keeps the model under `params` (e.g. a fine-tuned model and its head);
        the metadata gains the parameters' block layout."""
        self.wait()
        self.saving = step
        meta = {**meta, "layers": layers_of(state["params"])}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        try:
            self.manager.save(step, args=args)
        except Exception as err:
            raise self._write_failed(err) from None

    def check_saved(self) -> None:
        """Raise `CheckpointWriteFailed` if the save in flight has ended in failure; free while it runs."""
        if self.saving is not None and not self.manager.is_saving_in_progress():
            self.wait()

    def wait(self) -> None:
        """Wait for the save in flight; `CheckpointWriteFailed` if it failed."""
        if self.saving is None:
            return
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            raise self._write_failed(err) from None
        self.saving = None

    def _write_failed(self, err: Exception) -> CheckpointWriteFailed:
        step, self.saving = self.saving, None
        self.manager.reload()  # orbax dropped the steps this save was to replace from its list, not disk
        kept = [s for s in self.all_steps() if s != step]
        last = f"the last good checkpoint is step {kept[-1]}" if kept else "no checkpoint was kept"
        # orbax leaves sibling write tasks of the failed save unawaited; at exit asyncio would print each
        # one's traceback and Python a "never awaited" warning, after the one line that says it all
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        return CheckpointWriteFailed(
            f"checkpoint {step} could not be written to {self.directory} ({_reason(err)}); the run stopped "
            f"and {last}; free space (or fix the directory) and rerun the same command to resume"
        )

    def set_aside(self, step: int) -> Path:
        """Move checkpoint `step` out of the store (into checkpoints.corrupt/), instead of deleting it."""
        aside = self.directory.with_name(f"{self.directory.name}.corrupt") / str(step)
        n = 0
        while aside.exists():
            n += 1
            aside = aside.with_name(f"{step}-{n}")
        aside.parent.mkdir(exist_ok=True)
        shutil.move(self.directory / str(step), aside)
        self.manager.reload()
        return aside

    def restore_params(self, step: int, abstract_params: Any) -> Any:
        """Only the model parameters at `step` (the optimizer state is never read), placed as the
        abstract tree's shardings say: generation and fine-tuning need nothing else."""
        abstract = {"params": abstract_params}
        args = ocp.args.PyTreeRestore(
            abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract), partial_restore=True
        )
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(state=args))
        except Exception as err:
            raise self._unreadable(step, err) from None
        return restored["state"]["params"]

    def read_meta(self, step: int) -> dict:
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        except Exception as err:
            raise self._unreadable(step, err) from None
        return dict(restored["meta"])

    def saved_layers(self, step: int) -> Layers:
        """The block layout checkpoint `step` holds; those written before scanned layers existed are
        unrolled."""
        return self.read_meta(step).get("layers", "unrolled")

    def restore(self, step: int, layout: StateLayout) -> tuple[Any, Any, dict]:
        """Parameters and optimizer state at `step`, in `layout`'s block layout and placed by its shardings
        (read in the layout the checkpoint holds, then converted)."""
        saved = layout.with_layers(self.saved_layers(step))
        abstract = {"params": saved.abstract_params, "opt_state": saved.abstract_opt_state}
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:
            raise self._unreadable(step, err) from None
        target = {"params": layout.abstract_params, "opt_state": layout.abstract_opt_state}
        state = relaid(restored["state"], target)
        return state["params"], state["opt_state"], dict(restored["meta"])

    def _unreadable(self, step: int, err: Exception) -> UserError:
        if "tree structures do not match" in str(err):
            return UserError(
                f"checkpoint {self.directory / str(step)} holds a training state laid out differently from "
                "this run's (another optimizer setup, or written by an older version of scaling, whose AdamW "
                "state had a schedule counter); start a new run directory"
            )
        reason = _reason(err)
        return CorruptCheckpoint(
            f"checkpoint {self.directory / str(step)} is corrupted or truncated ({reason}); move it "
            "aside to resume from an earlier checkpoint, or start a new run directory",
            reason,
        )

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.manager.close()


def _reason(err: BaseException) -> str:
    """The root cause's first line, without the repr of a bound method that orbax's tensorstore errors
    end with; an operating-system error (tensorstore's `os_error_code`) as its errno name and text."""
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    if isinstance(err, OSError) and err.errno:
        return f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror}"
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    code = re.search(r"os_error_code='(\d+)'", text)
    if code:
        number = int(code.group(1))
        return f"{errno.errorcode.get(number, number)}: {os.strerror(number)}"
    text = re.split(r"\s*See full TensorStore details", text)[0]
    return text if len(text) <= 300 else f"...{text[-297:]}"


def _quiet_late_tensorstore_reports() -> None:
    """When a restore or a save fails, tensorstore reads or writes still in flight report into orbax's
    closed event loop and Python prints each "Event loop is closed" error as unraisable, with a traceback,
    for seconds after; they say nothing the one-line error does not, so they go to the log (debug)."""
    previous = sys.unraisablehook
    if getattr(previous, "quiet_closed_loop", False):
        return

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(
            unraisable.exc_value
        ):
            log.debug("late tensorstore report: %s", unraisable.exc_value)
            return
        previous(unraisable)

    hook.quiet_closed_loop = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
