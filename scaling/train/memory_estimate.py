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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from scaling.model.config import ModelConfig
from scaling.model.sharding import PARAM_SPECS
from scaling.train.mfu import DeviceTable, kind_entry
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

    def holding(self, members: int) -> MemoryEstimate:
        """The same step with `members` states held at once (a population: one step's temporaries)."""
        return dataclasses.replace(self, params=members * self.params, optimizer=members * self.optimizer)

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


# Memory of one device by kind, as in `mfu.PEAK_BF16_FLOPS` (substrings of the lower-cased kind, bytes,
# name; first match wins). From the data sheets: TPU v4 32 GiB, v5e 16 GiB, v5p 95 GiB, v6e 32 GiB HBM
# per chip (Cloud TPU system-architecture pages); A100 40 or 80 GB, H100 80 GB (NVL 94 GB), H200 141 GB.
# On GPUs JAX takes 75% of it by default (XLA_PYTHON_CLIENT_MEM_FRACTION), which `device_memory` applies.
DEVICE_MEMORY: DeviceTable = (
    (("tpu v4",), 32 * 2**30, "TPU v4"),
    (("tpu v5 lite",), 16 * 2**30, "TPU v5e"),
    (("tpu v5e",), 16 * 2**30, "TPU v5e"),
    (("tpu v5",), 95 * 2**30, "TPU v5p"),
    (("tpu v6",), 32 * 2**30, "TPU v6e"),
    (("a100", "80g"), 80e9, "A100 80GB"),
    (("a100",), 40e9, "A100 40GB"),
    (("h100", "nvl"), 94e9, "H100 NVL"),
    (("h100",), 80e9, "H100"),
    (("h200",), 141e9, "H200"),
)
GPU_MEMORY_FRACTION = 0.75


def device_memory(kind: str) -> tuple[int, str] | None:
    """(bytes JAX may use on one device of this kind, its name), or None when not in the table."""
    entry = kind_entry(DEVICE_MEMORY, kind)
    if entry is None:
        return None
    value, name = entry
    return int(value * (1.0 if name.startswith("TPU") else GPU_MEMORY_FRACTION)), name
