"""The decoder's shape, and the one place that counts its parameters and training FLOPs.

Conventions (the fitter consumes these numbers, so they are stated once, here):
- Parameters: `params_embedding` is every vocabulary or position table: the token embedding (V x D),
  the learned position embedding (T x D) when used, and the output matrix (D x V) when untied.
  `params_nonembedding` is everything else (attention, MLP, LayerNorms, biases), as in Kaplan et al. 2020.
- FLOPs: one multiply-add is 2 FLOPs. Only matrix multiplies are counted (LayerNorm, GELU, softmax and
  other elementwise work are not), including the unembedding (2DV) but not the embedding lookup (a gather).
- Causal attention is counted as what the dense implementation executes: every query against all T keys
  (QK^T and AV each 2·T·D per token), i.e. the causal mask does NOT halve it. This matches the PaLM MFU
  convention and Hoffmann et al.'s appendix F count.
- Training = forward + backward = 3 x forward.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

PositionEncoding = Literal["learned", "sinusoidal", "rope"]
ComputeDtype = Literal["float32", "bfloat16"]
Remat = Literal["none", "block", "dots"]
AttentionImpl = Literal["xla", "cudnn"]

# From this depth `scan_layers: null` scans the blocks. An unrolled step's compile time grows with L (at D=64
# on CPU: 1.4 s at L=2, 3.6 s at L=8, 43 s at L=32), a scanned one's stays that of one block (about 2 s);
# below 8 the saving is a second or two and the unrolled step is slightly faster (5.9 vs 7.2 ms at L=2),
# so shallow models stay unrolled (benchmarks/bench_scan.py).
SCAN_MIN_LAYERS = 8


@dataclass(frozen=True)
class ModelConfig:
    """GPT decoder shape, math-style: V vocabulary, T context, D width, L layers, H heads, F MLP width.

    remat: what the backward pass recomputes instead of keeping (none; block: everything inside a block;
    dots: all but the matmul outputs). attention: xla (our einsum softmax, on every backend) or cudnn
    (`jax.nn.dot_product_attention`'s fused GPU kernel). scan_layers: the blocks' parameters stacked on a
    leading layer axis and applied by one `jax.lax.scan`, so compile time does not grow with L (null: from
    SCAN_MIN_LAYERS layers; `scanned` is the resolved choice). None of the three changes what is computed.
    """

    V: int = 8192
    T: int = 256
    D: int = 256
    L: int = 4
    H: int = 4
    F: int = 0  # 0 means 4·D
    pos_encoding: PositionEncoding = "learned"
    tie_embeddings: bool = True
    dropout: float = 0.0
    compute_dtype: ComputeDtype = "float32"
    rope_base: float = 10000.0
    init_std: float = 0.02
    remat: Remat = "none"
    attention: AttentionImpl = "xla"
    scan_layers: bool | None = None

    def __post_init__(self) -> None:
        for name in ("V", "T", "D", "L", "H"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.F < 0:
            raise ValueError(f"model.F must be >= 0 (0 means 4·D), got {self.F}")
        if self.D % self.H:
            raise ValueError(f"model.D={self.D} must be divisible by model.H={self.H}")
        if self.pos_encoding == "rope" and (self.D // self.H) % 2:
            raise ValueError(f"rope needs an even head width, got D/H={self.D // self.H}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.attention == "cudnn" and self.dropout > 0:
            raise ValueError("model.attention: cudnn has no attention dropout; use model.dropout: 0 or xla")
        if self.F == 0:
            object.__setattr__(self, "F", 4 * self.D)

    @property
    def head_dim(self) -> int:
        return self.D // self.H

    @property
    def scanned(self) -> bool:
        """Whether the blocks are stacked and scanned: `scan_layers`, or by depth when it is null."""
        return self.L >= SCAN_MIN_LAYERS if self.scan_layers is None else self.scan_layers

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # ---- parameters -------------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter tensor's shape, named as in the sharding table (`blocks/*/...`: one entry per
        kind of layer tensor, present L times); the counts below are sums over this table."""
        D, F, H, K, T, V = self.D, self.F, self.H, self.head_dim, self.T, self.V
        shapes: dict[str, tuple[int, ...]] = {"wte/embedding_VxD": (V, D)}
        if self.pos_encoding == "learned":
            shapes["wpe/embedding_TxD"] = (T, D)
        if not self.tie_embeddings:
            shapes["unembed/kernel_DxV"] = (D, V)
        for norm in ("ln1", "ln2"):
            shapes[f"blocks/*/{norm}/scale_D"] = shapes[f"blocks/*/{norm}/bias_D"] = (D,)
        shapes["blocks/*/attn/qkv_kernel_Dx3xHxK"] = (D, 3, H, K)
        shapes["blocks/*/attn/qkv_bias_3xHxK"] = (3, H, K)
        shapes["blocks/*/attn/out_kernel_HxKxD"] = (H, K, D)
        shapes["blocks/*/attn/out_bias_D"] = (D,)
        shapes["blocks/*/mlp/fc_kernel_DxF"] = (D, F)
        shapes["blocks/*/mlp/fc_bias_F"] = (F,)
        shapes["blocks/*/mlp/proj_kernel_FxD"] = (F, D)
        shapes["blocks/*/mlp/proj_bias_D"] = (D,)
        shapes["ln_f/scale_D"] = shapes["ln_f/bias_D"] = (D,)
        return shapes

    def _count(self, keep) -> int:
        return sum(math.prod(shape) for name, shape in self.param_shapes().items() if keep(name))

    @property
    def params_per_layer(self) -> int:
        return self._count(lambda name: name.startswith("blocks/"))

    @property
    def params_nonembedding(self) -> int:
        return self.L * self.params_per_layer + self._count(lambda name: name.startswith("ln_f/"))

    @property
    def params_embedding(self) -> int:
        return self._count(lambda name: name.startswith(("wte/", "wpe/", "unembed/")))

    @property
    def params(self) -> int:
        return self.params_nonembedding + self.params_embedding

    # ---- FLOPs ------------------------------------------------------------------------------
    @property
    def forward_flops_per_token(self) -> int:
        """Matmul FLOPs of one forward pass, per token, at full context T (see the module docstring)."""
        D, F, T, V = self.D, self.F, self.T, self.V
        projections = 2 * (3 * D * D + D * D)
        attention = 2 * T * D + 2 * T * D  # scores QK^T and the weighted sum AV, all T keys
        mlp = 2 * (2 * D * F)
        return self.L * (projections + attention + mlp) + 2 * D * V

    @property
    def flops_per_token(self) -> int:
        """Exact training FLOPs per token: 3 x forward (backward costs two forward-sized matmuls)."""
        return 3 * self.forward_flops_per_token

    @property
    def flops_per_token_6n(self) -> int:
        """Kaplan's 6N cross-check with N the non-embedding parameters (ignores attention and unembedding)."""
        return 6 * self.params_nonembedding


@dataclass(frozen=True)
class ShapeRecipe:
    """How a target parameter count becomes (D, L, H): the stated aspect-ratio rule of a sweep.

    D is a multiple of `head_dim` (H = D / head_dim); for each depth L the width D that brings the exact
    non-embedding count closest (in log) to the target is found, and the depth whose D/L is closest to
    `aspect_ratio` wins. The resulting count is exact, not the target: sweeps log the real number.
    """

    aspect_ratio: float = 64.0
    head_dim: int = 64
    mlp_ratio: int = 4
    max_layers: int = 96

    def __post_init__(self) -> None:
        if self.aspect_ratio <= 0 or self.head_dim < 1 or self.mlp_ratio < 1 or self.max_layers < 1:
            raise ValueError(f"invalid shape recipe {self}")

    def shape_for(self, target_nonembedding: float, base: ModelConfig) -> ModelConfig:
        if not target_nonembedding > 0:
            raise ValueError(f"target parameter count must be > 0, got {target_nonembedding}")
        best: tuple[float, ModelConfig] | None = None
        for layers in range(1, self.max_layers + 1):
            width = self._width_for(target_nonembedding, layers, base)
            cfg = base.replace(D=width, L=layers, H=width // self.head_dim, F=self.mlp_ratio * width)
            aspect_miss = abs(math.log(width / layers / self.aspect_ratio))
            if best is None or aspect_miss < best[0]:
                best = (aspect_miss, cfg)
        assert best is not None
        return best[1]

    def _width_for(self, target: float, layers: int, base: ModelConfig) -> int:
        def count(units: int) -> int:
            width = units * self.head_dim
            return base.replace(D=width, L=layers, H=units, F=self.mlp_ratio * width).params_nonembedding

        units = 1
        while count(units + 1) <= target:
            units += 1
        if abs(math.log(count(units + 1) / target)) < abs(math.log(count(units) / target)):
            units += 1
        return units * self.head_dim
