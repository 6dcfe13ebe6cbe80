"""The sweep file: a base run config, a named recipe and a grid, loaded strictly.

Every opinionated choice lives in one `Recipe` whose fields have no defaults, so a sweep file states them
all; the base run config may not set what the recipe decides (width, depth, steps, batch, learning rate,
schedule), so nothing is decided in two places.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from scaling.config_io import from_dict, load_yaml
from scaling.errors import UserError
from scaling.model.config import ModelConfig, ShapeRecipe

Platform = Literal["cpu", "gpu", "tpu"]

# Run-config keys the recipe sets; a base config that sets one of them is rejected.
RECIPE_OWNED = (
    "name",
    "model.D",
    "model.L",
    "model.H",
    "model.F",
    "train.steps",
    "train.batch_size",
    "train.micro_batches",
    "train.seed",
    "optim.lr",
    "optim.schedule",
    "optim.warmup_steps",
    "optim.min_lr_ratio",
    "optim.decay_fraction",
    "optim.decay_steps",
    "optim.decay_shape",
    "train.branches",
    "train.branch_from",
)


@dataclass(frozen=True)
class LrRule:
    """Peak learning rate as a power of model size, given exactly one reference:
    lr = peak * (N / reference_params) ** -exponent with N the non-embedding parameters, or
    lr = peak * (D / reference_width) ** -exponent with D the width. muP's rule for Adam is the width form
    with exponent 1 (hidden-layer updates stay the same size as the model widens)."""

    peak: float
    exponent: float
    reference_params: float | None = None
    reference_width: float | None = None

    def __post_init__(self) -> None:
        references = [r for r in (self.reference_params, self.reference_width) if r is not None]
        if len(references) != 1:
            raise ValueError("lr needs exactly one of reference_params and reference_width")
        if not (self.peak > 0 and references[0] > 0):
            raise ValueError(f"lr.peak and its reference must be > 0, got {self}")

    def at(self, model: ModelConfig) -> float:
        if self.reference_width is not None:
            return self.peak * (model.D / self.reference_width) ** -self.exponent
        return self.peak * (model.params_nonembedding / self.reference_params) ** -self.exponent


@dataclass(frozen=True)
class WeightDecayRule:
    """Weight decay from AdamW's timescale (Wang & Aitchison 2024; Bergsma et al. 2025, "Power Lines").

    Decoupled decay makes the weights an exponential average of recent updates over 1 / (lr * lambda)
    steps. A fixed lambda makes that window most of a short ladder run (decay does nothing) and a few
    percent of a 1000x target (decay dominates): the ladder and the targets train in different regimes.
    Holding the window at `timescale` of the run, lambda = 1 / (timescale * lr * steps), keeps them alike.
    """

    timescale: float

    def __post_init__(self) -> None:
        if not self.timescale > 0:
            raise ValueError(f"recipe.weight_decay.timescale must be > 0, got {self.timescale}")

    def at(self, lr: float, steps: int) -> float:
        return 1.0 / (self.timescale * lr * max(steps, 1))


@dataclass(frozen=True)
class ShortRunBatch:
    """Smaller batches for runs too short to get `steps` optimiser steps at the recipe's batch size.

    A ladder's cheapest runs see a few hundred thousand tokens: at a fixed batch they get 100-300 steps and
    end where training is limited by steps, not by parameters or tokens (on English bytes, near the
    unigram entropy), so their IsoFLOP minima slide to the smallest models. Bergsma et al. 2025 ("Power
    Lines") find the best batch grows with the tokens a run sees; here a run takes the largest divisor of
    the recipe's batch (from min_batch_size up) that still gives it `steps` steps, so long runs keep the
    recipe's batch, and its evaluation, in proportionally more batches, reads the same validation windows.
    """

    steps: int
    min_batch_size: int

    def __post_init__(self) -> None:
        if self.steps < 1 or self.min_batch_size < 1:
            raise ValueError(f"recipe.short_run_batch needs steps >= 1 and min_batch_size >= 1, got {self}")

    def at(self, tokens: float, seq_len: int, batch_size: int, micro_batches: int) -> int:
        fitting = tokens // (seq_len * self.steps)
        allowed = [
            b
            for b in range(self.min_batch_size, batch_size + 1)
            if batch_size % b == 0 and b % micro_batches == 0
        ]
        return max([b for b in allowed if b <= fitting], default=self.min_batch_size)


@dataclass(frozen=True)
class Recipe:
    """Every opinionated sweep choice, named so results tables can say which recipe made them.

    shape: parameter count -> (D, L, H). batch_size/micro_batches: global batch in sequences.
    lr: peak LR from non-embedding size or width. warmup_fraction: warmup steps as a fraction of the run.
    schedule: cosine decays to min_lr_ratio at the run's last step (matched to its length); wsd holds the
    peak and decays over the last decay_fraction of steps. min_steps: the fewest steps a run may have.
    seeds: runs per grid point, with train.seed 0..seeds-1 (names of seeds > 0 end in `_s<seed>`): a second
    seed halves the run-to-run noise variance the fit sees, and shows how large that noise is.
    branching (wsd only): each model size and seed trains its longest budget as a stable run and every
    shorter budget as a cooldown branch of it (`scaling.train.branch`), all sharing the shortest run's
    warmup; decay_shape: linear or 1-sqrt.
    weight_decay: a rule that sets each run's weight decay from its length (absent: base.optim's).
    short_run_batch: a rule that gives short runs a smaller batch so they still get enough steps (absent:
    every run trains at batch_size).
    """

    name: str
    shape: ShapeRecipe
    batch_size: int
    micro_batches: int
    lr: LrRule
    warmup_fraction: float
    schedule: Literal["cosine", "wsd"]
    min_lr_ratio: float
    decay_fraction: float
    min_steps: int
    seeds: int = 1
    branching: bool = False
    decay_shape: Literal["linear", "1-sqrt"] = "linear"
    weight_decay: WeightDecayRule | None = None
    short_run_batch: ShortRunBatch | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("recipe.name must not be empty")
        if self.batch_size < 1 or self.micro_batches < 1 or self.batch_size % self.micro_batches:
            raise ValueError(
                f"recipe.batch_size={self.batch_size} must be >= 1 and divisible by "
                f"recipe.micro_batches={self.micro_batches}"
            )
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"recipe.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.min_steps < 1:
            raise ValueError(f"recipe.min_steps must be >= 1, got {self.min_steps}")
        if self.seeds < 1:
            raise ValueError(f"recipe.seeds must be >= 1, got {self.seeds}")
        if self.branching and self.schedule != "wsd":
            raise ValueError("recipe.branching needs recipe.schedule: wsd (a stable phase to branch from)")
        if self.branching and self.weight_decay is not None:
            raise ValueError(
                "recipe.weight_decay (a rate set by each run's length) cannot be used with branching: "
                "a stable run and its shorter branches share one weight decay; remove one of the two"
            )
        self._check_short_run_batch()

    def _check_short_run_batch(self) -> None:
        rule = self.short_run_batch
        if rule is None:
            return
        if self.batch_size % rule.min_batch_size or rule.min_batch_size % self.micro_batches:
            raise ValueError(
                f"recipe.short_run_batch.min_batch_size={rule.min_batch_size} must divide recipe.batch_size="
                f"{self.batch_size} and be divisible by recipe.micro_batches={self.micro_batches}"
            )
        if self.branching:
            raise ValueError(
                "recipe.short_run_batch (a batch set by each run's length) cannot be used with branching: "
                "a stable run and its shorter branches share one batch; remove one of the two"
            )

    def batch_for(self, tokens: float, seq_len: int) -> int:
        """The global batch (sequences) of a run that trains on `tokens` tokens of `seq_len`."""
        if self.short_run_batch is None:
            return self.batch_size
        return self.short_run_batch.at(tokens, seq_len, self.batch_size, self.micro_batches)


@dataclass(frozen=True)
class Budget:
    """One IsoFLOP budget: `points` model sizes log-spaced over `params` (non-embedding, inclusive)."""

    flops: float
    params: tuple[float, ...]
    points: int

    def __post_init__(self) -> None:
        if len(self.params) != 2:
            raise ValueError(f"params must be [low, high], got {list(self.params)}")
        low, high = self.params
        if not self.flops > 0:
            raise ValueError(f"flops must be > 0, got {self.flops}")
        if not 0 < low <= high:
            raise ValueError(f"params must be [low, high] with 0 < low <= high, got {list(self.params)}")
        if self.points < 1 or (self.points > 1 and low == high):
            raise ValueError(f"points must be >= 1 (1 when low == high), got {self.points}")


@dataclass(frozen=True)
class ExplicitGrid:
    """Every model size (non-embedding parameters) crossed with every token budget."""

    params: tuple[float, ...]
    tokens: tuple[float, ...]

    def __post_init__(self) -> None:
        for key in ("params", "tokens"):
            values = getattr(self, key)
            if not values:
                raise ValueError(f"{key} is an empty grid: list at least one value")
            if any(not v > 0 for v in values):
                raise ValueError(f"{key} must all be > 0, got {list(values)}")


@dataclass(frozen=True)
class Grid:
    """Exactly one of: `isoflop` (a list of budgets) or `explicit` (sizes x token budgets)."""

    isoflop: tuple[Budget, ...] | None = None
    explicit: ExplicitGrid | None = None

    def __post_init__(self) -> None:
        if (self.isoflop is None) == (self.explicit is None):
            raise ValueError("give exactly one of isoflop (a list of budgets) or explicit")
        if self.isoflop is not None and not self.isoflop:
            raise ValueError("isoflop is an empty grid: list at least one budget")


TargetLaw = Literal["chinchilla", "isoflop"]


@dataclass(frozen=True)
class Target:
    """One large run trained after the ladder: a compute budget `flops` (its size chosen by the ladder's
    fit) or an explicit model size `params` (counted as `targets.params` says) and `tokens`."""

    flops: float | None = None
    params: float | None = None
    tokens: float | None = None

    def __post_init__(self) -> None:
        by_budget = self.flops is not None
        if by_budget == (self.params is not None or self.tokens is not None):
            raise ValueError("give either flops, or params and tokens")
        if not by_budget and (self.params is None or self.tokens is None):
            raise ValueError("an explicit target needs both params and tokens")
        for key in ("flops", "params", "tokens"):
            value = getattr(self, key)
            if value is not None and not 0 < value < float("inf"):
                raise ValueError(f"{key} must be a positive finite number, got {value}")


@dataclass(frozen=True)
class TargetsConfig:
    """The runs that check the ladder's prediction: `law` (chinchilla or isoflop, both give a
    compute-optimal size) is fitted to the finished ladder, counting parameters as `params`
    (non-embedding or total, also the convention of explicit targets' `params`), and chooses each budget
    target's size; `scaling sweep validate` fits every law with the same convention."""

    law: TargetLaw
    runs: tuple[Target, ...]
    params: Literal["nonembedding", "total"] = "nonembedding"

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("targets.runs is empty: list at least one {flops: ...} entry")


@dataclass(frozen=True)
class LaunchConfig:
    """How the local launcher places runs, and what the plan assumes for its time estimate.

    cpu: `workers` runs at once, each pinned to its share of this process's cores, with `devices_per_run`
    simulated JAX devices. gpu: each worker gets `devices_per_run` GPUs through CUDA_VISIBLE_DEVICES.
    tpu: one worker using every chip of the host. `device_kind` (e.g. "H100", "TPU v5 lite") makes the plan
    use that device's data-sheet peak instead of measuring this machine; `assumed_mfu` is the efficiency the
    estimate assumes until runs of this sweep have finished and measured their own. `population`: at most
    this many runs of one model shape train in one worker process (`scaling train-population`: start-up,
    data loading and compilation paid once for them all); 1 trains every run in its own process.
    """

    platform: Platform = "cpu"
    workers: int = 1
    devices_per_run: int = 1
    device_kind: str = ""
    assumed_mfu: float = 0.3
    population: int = 8

    def __post_init__(self) -> None:
        if self.workers < 1 or self.devices_per_run < 1:
            raise ValueError("launch.workers and launch.devices_per_run must be >= 1")
        if self.population < 1:
            raise ValueError(
                f"launch.population must be >= 1 (1: every run in its own process), got {self.population}"
            )
        if self.platform == "tpu" and self.workers != 1:
            raise ValueError("launch.workers must be 1 on tpu: one run uses every chip of the host")
        if not 0 < self.assumed_mfu <= 1:
            raise ValueError(f"launch.assumed_mfu must be in (0, 1], got {self.assumed_mfu}")


@dataclass(frozen=True)
class SlurmConfig:
    """submitit parameters for `scaling sweep run --launcher slurm`: one array task per run or population
    (`launch.population`)."""

    partition: str = ""
    timeout_min: int = 60
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float = 0.0
    array_parallelism: int = 64

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "timeout_min": self.timeout_min,
            "nodes": self.nodes,
            "cpus_per_task": self.cpus_per_task,
            "slurm_array_parallelism": self.array_parallelism,
        }
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.partition:
            params["slurm_partition"] = self.partition
        return params


@dataclass(frozen=True)
class SweepSpec:
    """A sweep file. `base` is a run config mapping (checked when the plan builds each run's config)."""

    name: str
    recipe: Recipe
    grid: Grid
    base: Any = field(default_factory=dict)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    targets: TargetsConfig | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty name without '/', got {self.name!r}")
        if not isinstance(self.base, dict):
            raise ValueError(f"base must be a run config mapping, got {self.base!r}")
        for key in RECIPE_OWNED:
            node: Any = self.base
            for part in key.split("."):
                node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
            if node is not _ABSENT:
                raise ValueError(f"base.{key} is set by the recipe; remove it from the base config")
        optim = self.base.get("optim")
        decay = optim.get("weight_decay", _ABSENT) if isinstance(optim, dict) else _ABSENT
        if self.recipe.weight_decay is not None and decay is not _ABSENT:
            raise ValueError("base.optim.weight_decay is set by recipe.weight_decay; remove one of the two")


_ABSENT = object()


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; errors name the file and the offending entry."""
    path = Path(path)
    data = load_yaml(path)
    shape = (data.get("recipe") or {}).get("shape") if isinstance(data.get("recipe"), dict) else None
    if isinstance(shape, dict):
        missing = [f.name for f in fields(ShapeRecipe) if f.name not in shape]
        if missing:
            raise UserError(f"{path.name}.recipe.shape: state every field, missing {', '.join(missing)}")
    return from_dict(SweepSpec, data, where=path.name)
