"""A training run's whole configuration: one frozen dataclass per concern, loaded strictly from YAML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from scaling.config_io import load_config
from scaling.data import DataConfig
from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig
from scaling.track.config import TrackConfig
from scaling.train.optimizer import OptimConfig


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings. `batch_size` is the global batch in sequences of `model.T` tokens, split into
    `micro_batches` accumulated inside one jitted step, so a step is always a global step.

    branches: ends of wsd cooldown branches (fractions of `steps`, or token counts), trained after the run
    under `<run>/branches/`; branch_from: the stable run a branch starts from (see `scaling.train.branch`).
    """

    steps: int = 200
    batch_size: int = 16
    micro_batches: int = 1
    seed: int = 0
    log_every: int = 10
    eval_every: int = 50
    eval_batches: int = 8
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    branches: tuple[float, ...] = ()
    branch_from: str = ""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "micro_batches", "log_every", "eval_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("train.checkpoint_every and train.keep_checkpoints must be >= 1")
        if any(not (b > 0 and math.isfinite(b)) for b in self.branches):
            raise ValueError(
                f"train.branches must be fractions of the run or token counts > 0, got {self.branches}"
            )
        if self.batch_size % self.micro_batches:
            raise ValueError(
                f"train.batch_size={self.batch_size} must be divisible by "
                f"train.micro_batches={self.micro_batches}"
            )


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    track: TrackConfig = field(default_factory=TrackConfig)

    @property
    def tokens_per_step(self) -> int:
        return self.train.batch_size * self.model.T


def load_run_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    return load_config(RunConfig, path, overrides)
