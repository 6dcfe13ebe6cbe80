"""What would make a run fit the memory there is: each change (more micro-batches, remat, fsdp) with the
formula's figure for the run so changed, so the suggestion in a refusal is one that fits."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from types import SimpleNamespace

from scaling.errors import UserError
from scaling.model.config import ModelConfig
from scaling.model.sharding import PARAM_SPECS, MeshConfig, check_divisible
from scaling.train.memory_estimate import human_bytes, run_formula
from scaling.train.run_config import RunConfig


def what_would_fit(
    cfg: RunConfig,
    mesh_shape: dict[str, int],
    limit: int,
    devices: int,
    remat_saves: bool = True,
    scale: float = 1.0,
    keys: dict[str, str] | None = None,
) -> str:
    """The changes that bring the formula under `limit` bytes (shared by `devices` devices), each with its
    figure: the fewest micro-batches that fit, the lightest remat that fits, all devices on fsdp; or, when
    none does alone, what all of them together would still need. `scale` multiplies the formula's
    activations (compiled over formula, where the run's step was compiled). `keys` names the settings as
    the user sets them (a sweep sets micro-batches as recipe.micro_batches)."""
    names = {**TRAIN_KEYS, **(keys or {})}
    per_device = " per device" if devices > 1 else ""

    def needed(changed: RunConfig, shape: dict[str, int]) -> int:
        e = run_formula(changed, shape, remat_saves)
        return e.params + e.optimizer + e.gradients + math.ceil(scale * e.activations)

    changes = list(_changes(cfg, mesh_shape, remat_saves, names))
    fits: dict[str, str] = {}
    for kind, label, changed, shape in changes:
        total = needed(changed, shape)
        if total * devices <= limit and kind not in fits:
            fits[kind] = f"{label} would need {human_bytes(total)}{per_device}"
    if fits:
        return "; or ".join(fits.values())
    advice = f"choose a smaller model (model.D, model.L) or a smaller {names['batch']}"
    if not changes:
        return advice
    strongest = {kind: (label, changed, shape) for kind, label, changed, shape in changes}
    combined, shape = cfg, mesh_shape
    for kind, (_, changed, new_shape) in strongest.items():
        section = _SECTIONS[kind]
        combined = dataclasses.replace(combined, **{section: getattr(changed, section)})
        shape = new_shape if kind == "fsdp" else shape
    labels = " ".join(label for label, _, _ in strongest.values())
    total = needed(combined, shape)
    if total * devices <= limit:
        return f"{labels} together would need {human_bytes(total)}{per_device}"
    return f"{advice}: even {labels} would need {human_bytes(total)}{per_device}"


_SECTIONS = {"micro": "train", "remat": "model", "fsdp": "mesh"}
TRAIN_KEYS = {
    "micro": "train.micro_batches",
    "remat": "model.remat",
    "fsdp": "mesh.fsdp",
    "data": "mesh.data",
    "batch": "train.batch_size",
}


def _changes(
    cfg: RunConfig, mesh_shape: dict[str, int], remat_saves: bool, names: dict[str, str]
) -> Iterator[tuple[str, str, RunConfig, dict[str, int]]]:
    """(kind, label, config, mesh shape) for each single change that lowers the estimate."""
    batch, shards = cfg.train.batch_size, mesh_shape["data"] * mesh_shape["fsdp"]
    micro = 2 * cfg.train.micro_batches
    while batch % micro == 0 and (batch // micro) % shards == 0:
        train = dataclasses.replace(cfg.train, micro_batches=micro)
        yield "micro", f"{names['micro']}={micro}", dataclasses.replace(cfg, train=train), mesh_shape
        micro *= 2
    policies = ("none", "dots", "block")
    for remat in policies[policies.index(cfg.model.remat) + 1 :] if remat_saves else ():
        model = cfg.model.replace(remat=remat)
        yield "remat", f"{names['remat']}={remat}", dataclasses.replace(cfg, model=model), mesh_shape
    if mesh_shape["data"] > 1 and _shardable(cfg.model, {**mesh_shape, "data": 1, "fsdp": shards}):
        shape = {**mesh_shape, "data": 1, "fsdp": shards}
        mesh = MeshConfig(data=1, fsdp=shards, tensor=mesh_shape["tensor"])
        label = f"{names['fsdp']}={shards} {names['data']}=1"
        yield "fsdp", label, dataclasses.replace(cfg, mesh=mesh), shape


def _shardable(model: ModelConfig, mesh_shape: dict[str, int]) -> bool:
    mesh = SimpleNamespace(shape=mesh_shape)
    try:
        for key, shape in model.param_shapes().items():
            check_divisible(key, shape, PARAM_SPECS[key], mesh)
    except UserError:
        return False
    return True
