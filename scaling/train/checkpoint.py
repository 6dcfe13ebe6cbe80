"""Orbax checkpoints of the training state, restorable onto any mesh.

Saves are asynchronous; `close()` waits on the same manager that saved, so the final checkpoint is never
lost at exit. Restores go through the abstract state of the *current* layout, so a run saved on 8 devices
resumes on 1 and the reverse.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from scaling.errors import UserError
from scaling.train.state import StateLayout

log = logging.getLogger(__name__)


class CheckpointStore:
    def __init__(self, directory: Path, keep: int, *, read_only: bool = False):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=not read_only, read_only=read_only, enable_async_checkpointing=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, params: Any, opt_state: Any, meta: dict) -> None:
        self.save_tree(step, {"params": params, "opt_state": opt_state}, meta)

    def save_tree(self, step: int, state: dict, meta: dict) -> None:
        """Save any state tree that keeps the model under `params` (e.g. a fine-tuned model and its head)."""
        self.manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        )

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

    def restore(self, step: int, layout: StateLayout) -> tuple[Any, Any, dict]:
        """Parameters and optimizer state at `step`, placed by `layout`'s shardings."""
        abstract = {"params": layout.abstract_params, "opt_state": layout.abstract_opt_state}
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:
            raise self._unreadable(step, err) from None
        state = restored["state"]
        return state["params"], state["opt_state"], dict(restored["meta"])

    def _unreadable(self, step: int, err: Exception) -> UserError:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if "tree structures do not match" in first_line:
            return UserError(
                f"checkpoint {self.directory / str(step)} holds a training state laid out differently from "
                "this run's (another optimizer setup, or written by an older version of scaling, whose AdamW "
                "state had a schedule counter); start a new run directory"
            )
        return UserError(
            f"checkpoint {self.directory / str(step)} is corrupted or truncated ({type(err).__name__}: "
            f"{first_line}); move it aside to resume from an earlier checkpoint, or start a new run directory"
        )

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
