"""Cooldown branches of a warmup-stable-decay run (Hägele et al. 2024).

A wsd run with `train.branches` saves its state at each branch point into `<run>/branch_points/`. A branch
is an ordinary run whose config names that stable run (`train.branch_from`): it is the wsd run of its own
length (`train.steps`, decaying over its last `optim.decay_steps` or `decay_fraction`), and instead of
training its stable part again it starts from the stable run's state at `steps - decay steps`. Batches are
a function of (seed, step) and the two schedules agree up to that point, so a branch equals the same run
trained alone, bit for bit, at the price of its cooldown only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from scaling.config_io import from_dict, to_dict
from scaling.data import TokenDataset
from scaling.errors import UserError
from scaling.records import json_line, read_metrics
from scaling.train.checkpoint import CheckpointStore
from scaling.train.optimizer import learning_rates, wsd_decay_steps
from scaling.train.progress import Progress, check_resume_matches
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import PLACEMENT_KEYS, TRACKING_KEYS, RunDir, atomic_write_text, differing_keys
from scaling.train.state import StateLayout

BRANCH_POINTS = "branch_points"
BRANCHES = "branches"
# What may differ between a branch and its stable run: its length and cooldown, the bookkeeping, and the
# placement on devices and tracking (as for any resume).
BRANCH_OWN_KEYS = (
    "name",
    "train.steps",
    "train.branches",
    "train.branch_from",
    "optim.decay_steps",
    *PLACEMENT_KEYS,
    *TRACKING_KEYS,
)


def branch_point(cfg: RunConfig) -> int:
    """The step a run of `cfg`'s length leaves the stable phase: where its branch starts."""
    return cfg.train.steps - wsd_decay_steps(cfg.optim, cfg.train.steps)


def branch_ends(cfg: RunConfig) -> tuple[int, ...]:
    """The final step of each of `train.branches` (fractions of the run's steps, or token counts)."""
    ends = sorted(
        {round(b * cfg.train.steps) if b <= 1 else round(b / cfg.tokens_per_step) for b in cfg.train.branches}
    )
    if ends and ends[0] < 1:
        raise UserError(
            f"train.branches: {min(cfg.train.branches)} ends before the first step (fractions of the run's "
            f"{cfg.train.steps} steps, or token counts of at least one step, {cfg.tokens_per_step} tokens)"
        )
    if ends and cfg.optim.schedule != "wsd":
        raise UserError(
            f"train.branches needs optim.schedule: wsd (a stable phase to branch from), not "
            f"{cfg.optim.schedule}"
        )
    for end in ends:
        if not cfg.optim.warmup_steps <= branch_point(branch_config(cfg, end)) <= branch_point(cfg):
            raise UserError(
                f"train.branches: a branch ending at step {end} of {cfg.train.steps} would start outside the "
                f"stable phase (steps {cfg.optim.warmup_steps}-{branch_point(cfg)}); move its end so that "
                "its cooldown starts between the warmup and the run's own cooldown"
            )
    return tuple(ends)


def branch_config(cfg: RunConfig, end: int, stable: str = "..") -> RunConfig:
    """The branch of `cfg` ending at step `end`; `stable` is the stable run's directory, relative to the
    branch directory's parent (`..` for the branches a run keeps under `<run>/branches/`)."""
    train = dataclasses.replace(cfg.train, steps=end, branches=(), branch_from=stable)
    return dataclasses.replace(cfg, name=f"{cfg.name}_step{end}", train=train)


def branch_dirs(cfg: RunConfig, run_path: Path) -> list[tuple[RunConfig, Path]]:
    """The branches `scaling train` trains after a run with `train.branches`, each in its own directory
    (two below the run's, which its relative tracking directories are named from)."""
    runs = []
    for end in branch_ends(cfg):
        branch = dataclasses.replace(branch_config(cfg, end), track=cfg.track.relocated("../.."))
        runs.append((branch, run_path / BRANCHES / f"step{end}"))
    return runs


def stable_run(cfg: RunConfig, run_path: Path) -> RunDir:
    return RunDir((run_path.absolute().parent / cfg.train.branch_from).resolve())


def check_stable_run(cfg: RunConfig, stable: RunDir) -> RunConfig:
    """The stable run's config, after checking the branch can start from it: same run apart from length and
    cooldown, and the same learning rate at every step before the branch point."""
    stable_cfg = from_dict(RunConfig, stable.read_config(), where=str(stable.config_path))
    differing = differing_keys(to_dict(cfg), to_dict(stable_cfg), BRANCH_OWN_KEYS)
    if differing:
        raise UserError(
            f"train.branch_from: {stable.path} is a different run (differs in: {', '.join(differing[:8])})"
        )
    start = branch_point(cfg)
    ours = learning_rates(cfg.optim, cfg.train.steps)[:start]
    if start > stable_cfg.train.steps or not np.array_equal(
        ours, learning_rates(stable_cfg.optim, stable_cfg.train.steps)[:start]
    ):
        raise UserError(
            f"train.branch_from: {stable.path} does not follow this branch's learning rates up to its branch "
            f"point (step {start}): the branch must start in the stable run's stable phase"
        )
    return stable_cfg


def branch_steps(cfg: RunConfig) -> frozenset[int]:
    """The steps at which a run with `train.branches` saves its state for them."""
    return frozenset(branch_point(branch_config(cfg, end)) for end in branch_ends(cfg))


def open_branch_store(cfg: RunConfig, run: RunDir) -> CheckpointStore | None:
    """Where the run keeps its branch points: all of them, apart from its rolling checkpoints."""
    if not cfg.train.branches:
        return None
    return CheckpointStore(run.path / BRANCH_POINTS, keep=len(cfg.train.branches) + 1)


def start_from_stable(cfg: RunConfig, run: RunDir, layout: StateLayout, dataset: TokenDataset):
    """A branch's first state: its stable run's state at the branch point (params, optimizer state, the
    progress record with this run's own timings at zero, the step), its rows up to there copied."""
    stable = stable_run(cfg, run.path)
    check_stable_run(cfg, stable)
    start = branch_point(cfg)
    directory = stable.path / BRANCH_POINTS
    missing = UserError(
        f"{stable.path} has no branch point at step {start}: train the stable run first, with this branch's "
        f"end ({cfg.train.steps * cfg.tokens_per_step} tokens) among its train.branches"
    )
    if not directory.is_dir():
        raise missing
    store = CheckpointStore(directory, keep=1, read_only=True)
    try:
        if start not in store.all_steps():
            raise missing
        check_resume_matches(store.read_meta(start), dataset, cfg, directory)
        params, opt_state, meta = store.restore(start, layout)
    finally:
        store.close()
    if jax.process_index() == 0:
        copy_stable_metrics(stable, run, start)
    shared = meta["progress"]
    record = Progress(recent_losses=shared["recent_losses"], last_val_loss=shared["last_val_loss"])
    return params, opt_state, record, start


def copy_stable_metrics(stable: RunDir, run: RunDir, start: int) -> None:
    """The stable run's logged rows up to the branch point, as the branch's own first rows."""
    rows = [row for row in read_metrics(stable.metrics_path) if row["step"] <= start]
    atomic_write_text(run.metrics_path, "".join(json_line(row) for row in rows))
