"""Weights & Biases: one W&B run per run directory, resumed by the id kept there. Offline mode writes
`<dir>/wandb/offline-run-*` with no network; `wandb sync` uploads it later."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scaling.track.config import WandbConfig


class WandbTracker:
    def __init__(
        self, cfg: WandbConfig, run_id: str, name: str, directory: Path | None, config: dict, job: str
    ):
        """`directory` None: WANDB_DIR's."""
        import wandb

        self._wandb = wandb
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=cfg.project,
            name=name,
            id=run_id,
            resume="allow",
            group=cfg.group or None,
            job_type=job,
            dir=None if directory is None else str(directory),
            mode=None if os.environ.get("WANDB_MODE") else cfg.mode,
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def summary(self, values: Mapping[str, Any]) -> None:
        self.run.summary.update(dict(values))

    def image(self, name: str, path: Path, step: int) -> None:
        self.run.log({name: self._wandb.Image(str(path))}, step=step)

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        table = self._wandb.Table(columns=list(columns), data=[list(row) for row in rows])
        self.run.log({name: table}, step=step)

    def close(self) -> None:
        self.run.finish()
