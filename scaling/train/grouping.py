"""Which runs may share one population: one compiled step serves them all, so model, data, batch,
placement and optimizer constants must be equal; only what the host evaluates per run may differ (the
rate schedule, the seed of initialisation and data order, the length, logging and checkpoint cadence)."""

from __future__ import annotations

from pathlib import Path

from scaling.config_io import to_dict
from scaling.errors import UserError
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import differing_keys

# Dotted keys (prefixes) that members of one population may set each their own way.
MEMBER_KEYS = (
    "name",
    "optim.lr",
    "optim.schedule",
    "optim.warmup_steps",
    "optim.min_lr_ratio",
    "optim.decay_fraction",
    "optim.decay_steps",
    "optim.decay_shape",
    "train.seed",
    "train.steps",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.eval_batches",
    "track.",  # tracking is refused in a population, so its other settings do not matter
)


def check_population(cfgs: list[RunConfig], outs: list[Path]) -> None:
    """One-line UserError unless `cfgs` can train together into the distinct directories `outs`."""
    if len(cfgs) != len(outs):
        raise UserError(
            f"{len(cfgs)} configs but {len(outs)} --out directories; give one run directory per config"
        )
    resolved = [Path(out).resolve() for out in outs]
    repeated = sorted({str(out) for out in outs if resolved.count(Path(out).resolve()) > 1})
    if repeated:
        raise UserError(f"run directory {repeated[0]} is given twice; each member needs its own --out")
    for cfg in cfgs:
        if cfg.track.tensorboard or cfg.track.wandb.enabled:
            raise UserError(
                f"run {cfg.name!r} asks for tracking (track.tensorboard, track.wandb), which a population "
                "does not send yet; turn it off or train the run alone with `scaling train`"
            )
        if cfg.train.branches or cfg.train.branch_from:
            raise UserError(
                f"run {cfg.name!r} has train.branches or train.branch_from, which a population does not "
                "train; train it alone with `scaling train`"
            )
    lead = to_dict(cfgs[0])
    for cfg in cfgs[1:]:
        differing = differing_keys(lead, to_dict(cfg), MEMBER_KEYS)
        if differing:
            raise UserError(
                f"runs {cfgs[0].name!r} and {cfg.name!r} cannot share one population: they differ in "
                f"{', '.join(differing[:8])}{'...' if len(differing) > 8 else ''} (members may differ "
                "only in the rate schedule, train.seed, train.steps and logging cadence); train them apart"
            )
