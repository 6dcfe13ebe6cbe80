"""Expand a sweep into frozen run configs with deterministic names, validating every point first.

A name is a function of the grid point (`c1e13_n52.4K`: budget and exact non-embedding count; or
`n52.4K_t2M` for explicit grids), and a run's directory is `<sweep dir>/<name>`, so rerunning a sweep
finds the same directories and skips or resumes them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from scaling.config_io import from_dict
from scaling.errors import UserError
from scaling.model.config import ModelConfig
from scaling.model.sharding import AXES, PARAM_SPECS, check_batch_divisible, check_divisible
from scaling.sweep.spec import SweepSpec
from scaling.train.branch import branch_ends, branch_point
from scaling.train.run_config import RunConfig


@dataclass(frozen=True)
class PlannedRun:
    """One point of the grid: where it came from (`entry`, for error messages) and its run config."""

    name: str
    entry: str
    budget: float | None
    target_params: float
    config: RunConfig

    @property
    def steps(self) -> int:
        return self.config.train.steps

    @property
    def tokens(self) -> int:
        return self.steps * self.config.tokens_per_step

    @property
    def flops(self) -> int:
        return self.tokens * self.config.model.flops_per_token

    @property
    def branch_of(self) -> str | None:
        """The stable run this run is a cooldown branch of (a sibling in the sweep), if any."""
        return self.config.train.branch_from or None

    @property
    def shared_steps(self) -> int:
        """The steps its stable run trains for it: a branch's up to its branch point, none otherwise."""
        return branch_point(self.config) if self.branch_of else 0

    @property
    def own_flops(self) -> int:
        """FLOPs this run trains itself: a branch's stable part is trained (and counted) by its stable run."""
        return (
            (self.steps - self.shared_steps) * self.config.tokens_per_step * self.config.model.flops_per_token
        )

    @property
    def params_nonembedding(self) -> int:
        return self.config.model.params_nonembedding

    @property
    def shape(self) -> str:
        m = self.config.model
        return f"D{m.D} L{m.L} H{m.H}"


def format_count(value: float) -> str:
    """3 significant digits with K/M/B/T suffixes: 52_400 -> '52.4K'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def format_sci(value: float) -> str:
    """Compact scientific form for names: 1e13 -> '1e13', 3.5e12 -> '3.5e12'."""
    exponent = math.floor(math.log10(value))
    mantissa = float(f"{value / 10**exponent:.3g}")
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def plan(spec: SweepSpec) -> tuple[PlannedRun, ...]:
    """Every run of the sweep, in grid order; raises UserError naming the first bad entry."""
    model_base = base_model(spec)
    runs: list[PlannedRun] = []
    if spec.grid.isoflop is not None:
        for i, budget in enumerate(spec.grid.isoflop):
            for target in np.geomspace(*budget.params, budget.points):
                entry = f"grid.isoflop[{i}] (flops {budget.flops:.3g}, params {target:.3g})"
                model = spec.recipe.shape.shape_for(float(target), model_base)
                tokens = budget.flops / model.flops_per_token
                name = f"c{format_sci(budget.flops)}_n{format_count(model.params_nonembedding)}"
                runs += _seeded(spec, name, entry, budget.flops, float(target), model, tokens)
    else:
        grid = spec.grid.explicit
        assert grid is not None
        for i, target in enumerate(grid.params):
            model = spec.recipe.shape.shape_for(target, model_base)
            for j, tokens in enumerate(grid.tokens):
                entry = f"grid.explicit (params[{i}]={target:.3g}, tokens[{j}]={tokens:.3g})"
                name = f"n{format_count(model.params_nonembedding)}_t{format_count(tokens)}"
                runs += _seeded(spec, name, entry, None, target, model, tokens)
    _check_unique(runs)
    return branched(runs) if spec.recipe.branching else tuple(runs)


def branched(runs: list[PlannedRun]) -> tuple[PlannedRun, ...]:
    """Each (model, seed)'s longest run as the stable run, its shorter ones as cooldown branches of it, all
    with the shortest one's warmup (a branch must share the stable run's schedule up to its branch point)."""
    groups: dict[tuple, list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault((run.config.model, run.config.train.seed), []).append(run)
    planned: dict[str, PlannedRun] = {}
    for members in groups.values():
        members.sort(key=lambda r: (r.steps, r.name))
        stable, warmup = members[-1], members[0].config.optim.warmup_steps
        for run in members[:-1]:
            planned[run.name] = _with_train(run, warmup, branch_from=stable.name)
        ends = tuple(float(r.tokens) for r in members[:-1])
        planned[stable.name] = _with_train(stable, warmup, branches=ends)
        try:
            branch_ends(planned[stable.name].config)
        except UserError as err:
            raise UserError(f"{stable.entry}: run {stable.name}: {err}") from None
    return tuple(planned[run.name] for run in runs)


def _with_train(run: PlannedRun, warmup: int, **train) -> PlannedRun:
    cfg = run.config
    optim = dataclasses.replace(cfg.optim, warmup_steps=warmup)
    config = dataclasses.replace(cfg, optim=optim, train=dataclasses.replace(cfg.train, **train))
    return dataclasses.replace(run, config=config)


def _seeded(spec: SweepSpec, name: str, entry: str, *point) -> list[PlannedRun]:
    """The grid point's runs, one per seed of the recipe (seed 0 keeps the plain name)."""
    return [
        planned_run(spec, name if seed == 0 else f"{name}_s{seed}", entry, *point, seed=seed)
        for seed in range(spec.recipe.seeds)
    ]


def base_model(spec: SweepSpec) -> ModelConfig:
    return from_dict(ModelConfig, spec.base.get("model", {}), where=f"{spec.name}.base.model")


def planned_run(
    spec: SweepSpec,
    name: str,
    entry: str,
    budget: float | None,
    target: float,
    model,
    tokens: float,
    seed: int = 0,
) -> PlannedRun:
    recipe = spec.recipe
    batch = recipe.batch_for(tokens, model.T)
    tokens_per_step = batch * model.T
    steps = round(tokens / tokens_per_step)
    if steps < recipe.min_steps:
        raise UserError(
            f"{entry}: run {name} ({model.params_nonembedding:,} non-embedding params, {model.D=}, "
            f"{model.L=}) gets {steps} steps of {tokens_per_step:,} tokens, fewer than "
            f"recipe.min_steps={recipe.min_steps}; raise the budget or lower the model sizes"
        )
    config = _run_config(spec, name, model, steps, batch, seed)
    run = PlannedRun(name, entry, budget, target, config)
    _check_mesh(run, spec.launch.devices_per_run)
    return run


def _run_config(
    spec: SweepSpec, name: str, model: ModelConfig, steps: int, batch: int, seed: int
) -> RunConfig:
    """The base run config with the recipe's choices for this run put in (typed all the way)."""
    recipe = spec.recipe
    base = from_dict(RunConfig, spec.base, where=f"{spec.name}.base")
    train = dataclasses.replace(
        base.train,
        steps=steps,
        batch_size=batch,
        micro_batches=recipe.micro_batches,
        seed=seed,
        eval_batches=base.train.eval_batches * (recipe.batch_size // batch),  # the same windows
    )
    lr = recipe.lr.at(model)
    decay = base.optim.weight_decay if recipe.weight_decay is None else recipe.weight_decay.at(lr, steps)
    try:
        optim = dataclasses.replace(
            base.optim,
            lr=lr,
            weight_decay=decay,
            schedule=recipe.schedule,
            warmup_steps=round(recipe.warmup_fraction * steps),
            min_lr_ratio=recipe.min_lr_ratio,
            decay_fraction=recipe.decay_fraction,
            decay_shape=recipe.decay_shape,
        )
        track = base.track.grouped(spec.name)
        return dataclasses.replace(base, name=name, model=model, train=train, optim=optim, track=track)
    except ValueError as err:
        raise UserError(f"{spec.name}.base (run {name}): {err}") from None


def _check_mesh(run: PlannedRun, devices: int) -> None:
    """Reject a shape the run's mesh cannot shard: every tensor of the model's own shape table against its
    entry in the sharding table."""
    cfg = run.config
    try:
        sizes = cfg.mesh.resolve(devices)
        mesh = SimpleNamespace(shape=dict(zip(AXES, sizes, strict=True)))
        for key, shape in cfg.model.param_shapes().items():
            check_divisible(key, shape, PARAM_SPECS[key], mesh)
        check_batch_divisible(cfg.train.batch_size // cfg.train.micro_batches, mesh)
    except UserError as err:
        raise UserError(f"{run.entry}: run {run.name} ({run.shape}): {err}") from None


def _check_unique(runs: list[PlannedRun]) -> None:
    seen: dict[str, PlannedRun] = {}
    for run in runs:
        if run.name in seen:
            raise UserError(
                f"{run.entry}: two grid points give the same run {run.name} ({run.shape}), also from "
                f"{seen[run.name].entry}; use fewer points or a wider size range"
            )
        seen[run.name] = run
