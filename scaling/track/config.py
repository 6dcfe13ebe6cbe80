"""The `track:` section of a run config. Relative directories are taken from the run directory (as
`train.branch_from` is), so a config means the same wherever the run is resumed from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

WandbMode = Literal["offline", "online", "disabled"]
# W&B refuses these in a project name.
_BAD_PROJECT_CHARS = set("/\\#?%:")


@dataclass(frozen=True)
class WandbConfig:
    """One W&B run per run directory (its id kept there, so a resume continues it). mode: offline writes
    the run under `dir` for a later `wandb sync` (no network needed); WANDB_MODE, when set, wins. group:
    the W&B group ("" none; a sweep sets its name). dir: where W&B keeps its files ("" WANDB_DIR, else
    the run directory)."""

    enabled: bool = False
    project: str = "scaling"
    mode: WandbMode = "offline"
    group: str = ""
    dir: str = ""

    def __post_init__(self) -> None:
        if not self.project or _BAD_PROJECT_CHARS & set(self.project):
            raise ValueError(
                f"track.wandb.project must be a non-empty name without any of "
                f"{''.join(sorted(_BAD_PROJECT_CHARS))}, got {self.project!r}"
            )
        if len(self.group) > 128:
            raise ValueError(f"track.wandb.group must be at most 128 characters, got {len(self.group)}")


@dataclass(frozen=True)
class TrackConfig:
    """tensorboard: false; true for event files in `<run dir>/tensorboard`; or a directory shared by many
    runs, each writing to `<directory>/<run name>` (a sweep's `tensorboard/`)."""

    tensorboard: bool | str = False
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def __post_init__(self) -> None:
        if self.tensorboard == "":
            raise ValueError("track.tensorboard must be true, false or a directory, got ''")

    @property
    def enabled(self) -> bool:
        return self.tensorboard is not False or self.wandb.enabled

    def relocated(self, up: str) -> TrackConfig:
        """The same directories, named from a run directory at `up` from this one's (`../..` for a
        branch under `<run>/branches/`)."""

        def move(directory: str) -> str:
            return directory if not directory or Path(directory).is_absolute() else str(Path(up, directory))

        tensorboard = self.tensorboard if isinstance(self.tensorboard, bool) else move(self.tensorboard)
        wandb = dataclasses.replace(self.wandb, dir=move(self.wandb.dir))
        return dataclasses.replace(self, tensorboard=tensorboard, wandb=wandb)

    def grouped(self, sweep: str) -> TrackConfig:
        """A sweep's run (its directory `<sweep dir>/<name>`): `tensorboard: true` means the sweep's shared
        `<sweep dir>/tensorboard/<name>`, and W&B groups it under the sweep's name unless told otherwise."""
        tensorboard = "../tensorboard" if self.tensorboard is True else self.tensorboard
        wandb = dataclasses.replace(self.wandb, group=self.wandb.group or sweep)
        return dataclasses.replace(self, tensorboard=tensorboard, wandb=wandb)
