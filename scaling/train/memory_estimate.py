"""What one training step holds on each device, known before anything is allocated.

Two sources, one record. `compiled`: XLA's memory analysis of the step lowered on the abstract state
(exact for the schedule XLA chose). `formula`: a count of the tensors a memory-aware schedule keeps, per
micro-batch of `rows` x T tokens on a device (stated in `activation_bytes`); it needs no compilation,
so a sweep's plan and a run's first check are instant. The formula is tested against the compiled
analysis (tests/train/test_train_memory.py): within 2x at the shapes tried there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from scaling.errors import UserError
from scaling.model.config import ModelConfig
from scaling.model.sharding import PARAM_SPECS, MeshConfig, check_divisible
from scaling.train.run_config import RunConfig

Source = Literal["compiled", "formula"]
F32 = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes on one device at the step's peak. `gradients`: the micro-batch's gradient and the
    accumulator (float32, sharded like the parameters); `activations`: what the backward pass keeps plus
    the temporaries of the layer and loss being differentiated (for `compiled`, all of XLA's temporary
    buffers less `gradients`)."""

    params: int
    optimizer: int
    gradients: int
    activations: int
    source: Source

    @property
    def total(self) -> int:
        return self.params + self.optimizer + self.gradients + self.activations

    def describe(self) -> str:
        parts = ("params", "optimizer", "gradients", "activations")
        split = ", ".join(f"{name} {human_bytes(getattr(self, name))}" for name in parts)
        return f"{human_bytes(self.total)} per device ({split}; {self.source})"


def human_bytes(n: float) -> str:
    """Bytes as GB, or MB below one GB (decimal units, as memory analyses and data sheets use)."""
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def activation_bytes(model: ModelConfig, rows: int, tensor: int = 1) -> int:
    """Peak bytes of one micro-batch's forward and backward on a device holding `rows` sequences of T
    tokens, with heads, MLP units and vocabulary split `tensor` ways. Per token, in the compute dtype
    (c bytes; scores and softmax in float32):

    - a layer keeps (11 D + 2 F) c (LayerNorm inputs and outputs, q/k/v, scaled q, head outputs, the
      output projection, the MLP's two F-wide tensors, residuals) and H T (8 + c) (scores, softmax, probs);
    - remat none keeps every layer; block keeps each layer's input (D c) and recomputes one layer at a
      time; dots keeps the matmul outputs ((6 D + F) c + H T c) and recomputes the rest, one layer at a time;
    - the layer being differentiated needs 3 H T x 4 more (the scores' and probabilities' gradients);
    - the loss holds three float32 V-wide rows (logits, softmax, their gradient), which dominate small
      models with a large vocabulary.
    """
    D, F, H, T, V, L = model.D, model.F, model.H, model.T, model.V, model.L
    c = np.dtype(model.compute_dtype).itemsize
    per_head = H * T / tensor
    probs = F32 if c == F32 else F32 + c  # the float32 softmax, and its cast to the compute dtype
    layer = (11 * D + 2 * F / tensor) * c + per_head * probs
    kept = {  # a rematerialised layer is recomputed whole, one at a time, during its backward pass
        "none": L * layer,
        "block": (L - 1) * D * c + layer,
        "dots": (L - 1) * ((6 * D + F / tensor) * c + per_head * c) + layer,
    }[model.remat]
    working = layer + 2 * per_head * F32
    loss = 3 * V / tensor * F32
    return math.ceil(rows * T * (kept + working + loss))


def formula_estimate(
    model: ModelConfig, rows: int, tensor: int, params_bytes: int, optimizer_bytes: int
) -> MemoryEstimate:
    """The formula's record for `rows` sequences per device per micro-batch; `params_bytes` and
    `optimizer_bytes` are this device's shards."""
    return MemoryEstimate(
        params=params_bytes,
        optimizer=optimizer_bytes,
        gradients=2 * params_bytes,
        activations=activation_bytes(model, rows, tensor),
        source="formula",
    )


def compiled_estimate(compiled: Any, params_bytes: int, optimizer_bytes: int) -> MemoryEstimate | None:
    """The record from a compiled step's memory analysis, or None where the backend gives none."""
    analysis = compiled.memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", None)
    if temp is None:
        return None
    gradients = min(2 * params_bytes, int(temp))
    return MemoryEstimate(params_bytes, optimizer_bytes, gradients, int(temp) - gradients, "compiled")


def param_shard_bytes(model: ModelConfig, mesh_shape: dict[str, int]) -> int:
    """Float32 parameter bytes on one device of a mesh of these axis sizes, from the model's shape table
    and the sharding table (each layer tensor L times), without building a mesh."""
    total = 0
    for key, shape in model.param_shapes().items():
        spec = tuple(PARAM_SPECS[key]) + (None,) * len(shape)
        shard = [
            dim // math.prod(mesh_shape[a] for a in ((axes,) if isinstance(axes, str) else axes or ()))
            for dim, axes in zip(shape, spec, strict=False)
        ]
        total += math.prod(shard) * F32 * (model.L if key.startswith("blocks/") else 1)
    return total


def run_formula(cfg: RunConfig, mesh_shape: dict[str, int], remat_saves: bool = True) -> MemoryEstimate:
    """The formula for a run on a mesh of these axis sizes. AdamW keeps two float32 moments per parameter,
    sharded like it. `remat_saves=False` counts the run as remat none: XLA:CPU's default scheduler keeps
    (nearly) as much under any policy (see benchmarks/bench_memory.py)."""
    shards = mesh_shape["data"] * mesh_shape["fsdp"]
    rows = -(-cfg.train.batch_size // cfg.train.micro_batches // shards)
    model = cfg.model if remat_saves else cfg.model.replace(remat="none")
    params = param_shard_bytes(cfg.model, mesh_shape)
    return formula_estimate(model, rows, mesh_shape["tensor"], params, 2 * params)


def what_would_fit(
    cfg: RunConfig,
    mesh_shape: dict[str, int],
    limit: int,
    devices: int,
    remat_saves: bool = True,
    scale: float = 1.0,
) -> str:
    """The changes that bring the formula under `limit` bytes (shared by `devices` devices), each with its
    figure: the fewest micro-batches that fit, the lightest remat that fits, all devices on fsdp; or, when
    none does alone, what all of them together would still need. `scale` multiplies the formula's
    activations (compiled over formula, where the run's step was compiled)."""

    def needed(changed: RunConfig, shape: dict[str, int]) -> int:
        e = run_formula(changed, shape, remat_saves)
        return e.params + e.optimizer + e.gradients + math.ceil(scale * e.activations)

    changes = list(_changes(cfg, mesh_shape, remat_saves))
    fits: dict[str, str] = {}
    for kind, label, changed, shape in changes:
        total = needed(changed, shape)
        if total * devices <= limit and kind not in fits:
            fits[kind] = f"{label} would need {human_bytes(total)}"
    if fits:
        return "; or ".join(fits.values())
    advice = "choose a smaller model (model.D, model.L) or a smaller train.batch_size"
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
    return f"{advice}: even {labels} would need {human_bytes(total)}"


_SECTIONS = {"micro": "train", "remat": "model", "fsdp": "mesh"}


def _changes(
    cfg: RunConfig, mesh_shape: dict[str, int], remat_saves: bool
) -> Iterator[tuple[str, str, RunConfig, dict[str, int]]]:
    """(kind, label, config, mesh shape) for each single change that lowers the estimate."""
    batch, shards = cfg.train.batch_size, mesh_shape["data"] * mesh_shape["fsdp"]
    micro = 2 * cfg.train.micro_batches
    while batch % micro == 0 and (batch // micro) % shards == 0:
        train = dataclasses.replace(cfg.train, micro_batches=micro)
        yield "micro", f"train.micro_batches={micro}", dataclasses.replace(cfg, train=train), mesh_shape
        micro *= 2
    policies = ("none", "dots", "block")
    for remat in policies[policies.index(cfg.model.remat) + 1 :] if remat_saves else ():
        model = cfg.model.replace(remat=remat)
        yield "remat", f"model.remat={remat}", dataclasses.replace(cfg, model=model), mesh_shape
    if mesh_shape["data"] > 1 and _shardable(cfg.model, {**mesh_shape, "data": 1, "fsdp": shards}):
        shape = {**mesh_shape, "data": 1, "fsdp": shards}
        mesh = MeshConfig(data=1, fsdp=shards, tensor=mesh_shape["tensor"])
        yield "fsdp", f"mesh.fsdp={shards} mesh.data=1", dataclasses.replace(cfg, mesh=mesh), shape


def _shardable(model: ModelConfig, mesh_shape: dict[str, int]) -> bool:
    mesh = SimpleNamespace(shape=mesh_shape)
    try:
        for key, shape in model.param_shapes().items():
            check_divisible(key, shape, PARAM_SPECS[key], mesh)
    except UserError:
        return False
    return True
