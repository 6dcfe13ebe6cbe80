"""GPT decoder in Flax NNX: token (+ position) embedding, L pre-LayerNorm blocks, final LayerNorm,
logits through the (tied) token embedding. Shapes ride in names: B batch, T time, D width, H heads,
K head width, F MLP width, V vocabulary.

The blocks have two layouts (`model.scan_layers`): unrolled, an `nnx.List` of L blocks (parameters
`blocks/<i>/...`), or scanned, one Block whose parameters carry a leading L axis (`blocks/...`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from scaling.model.config import ModelConfig
from scaling.model.matmul import dense
from scaling.model.sharding import constrain


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], std: float) -> jax.Array:
    return std * jax.random.normal(rngs.params(), shape, jnp.float32)


class LayerNorm(nnx.Module):
    def __init__(self, D: int):
        self.scale_D = nnx.Param(jnp.ones((D,), jnp.float32))
        self.bias_D = nnx.Param(jnp.zeros((D,), jnp.float32))

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        x32 = x_BxTxD.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + 1e-5) * self.scale_D[...] + self.bias_D[...]
        return y.astype(x_BxTxD.dtype)


def sinusoidal_table(T: int, D: int) -> jax.Array:
    """Fixed sin/cos position table of Vaswani et al., [T, D]."""
    pos_T1 = jnp.arange(T, dtype=jnp.float32)[:, None]
    freq = jnp.exp(-math.log(10000.0) * jnp.arange(0, D, 2, dtype=jnp.float32) / D)
    table = jnp.zeros((T, D), jnp.float32)
    table = table.at[:, 0::2].set(jnp.sin(pos_T1 * freq))
    return table.at[:, 1::2].set(jnp.cos(pos_T1 * freq[: D // 2]))


def apply_rope(x_BxTxHxK: jax.Array, positions_T: jax.Array, base: float) -> jax.Array:
    """Rotate channel pairs (i, i + K/2) by position-dependent angles (Su et al. 2021)."""
    K = x_BxTxHxK.shape[-1]
    inv_freq = base ** (-jnp.arange(0, K, 2, dtype=jnp.float32) / K)
    angle_TxK2 = positions_T.astype(jnp.float32)[:, None] * inv_freq[None, :]
    cos = jnp.cos(angle_TxK2)[None, :, None, :]
    sin = jnp.sin(angle_TxK2)[None, :, None, :]
    x32 = x_BxTxHxK.astype(jnp.float32)
    x1, x2 = x32[..., : K // 2], x32[..., K // 2 :]
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x_BxTxHxK.dtype)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    if rate == 0.0 or key is None:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        D, H, K = cfg.D, cfg.H, cfg.head_dim
        out_std = cfg.init_std / math.sqrt(2 * cfg.L)
        self.qkv_kernel_Dx3xHxK = nnx.Param(_normal(rngs, (D, 3, H, K), cfg.init_std))
        self.qkv_bias_3xHxK = nnx.Param(jnp.zeros((3, H, K), jnp.float32))
        self.out_kernel_HxKxD = nnx.Param(_normal(rngs, (H, K, D), out_std))
        self.out_bias_D = nnx.Param(jnp.zeros((D,), jnp.float32))
        self.cfg = cfg

    def __call__(self, x_BxTxD: jax.Array, positions_T: jax.Array, key: jax.Array | None) -> jax.Array:
        q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = self.qkv(x_BxTxD, positions_T)
        if self.cfg.attention == "cudnn":
            return self.out(self.fused(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, "cudnn"))
        T = x_BxTxD.shape[1]
        causal_TxT = jnp.tril(jnp.ones((T, T), jnp.bool_))
        return self.out(self.attend(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, causal_TxT, key))

    def fused(self, q_BxTxHxK: jax.Array, k_BxTxHxK: jax.Array, v_BxTxHxK: jax.Array, implementation: str):
        """Causal attention through `jax.nn.dot_product_attention` (cuDNN's fused kernel on GPU; `xla` is the
        same function on any backend, which is how CPU tests check this path)."""
        scale = 1.0 / math.sqrt(self.cfg.head_dim)
        return jax.nn.dot_product_attention(
            q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, scale=scale, is_causal=True, implementation=implementation
        )

    def qkv(self, x_BxTxD: jax.Array, positions_T: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries, keys and values [B, T, H, K] of T positions (rotated under rope): the projections the
        decoding cache reuses for its new positions."""
        cfg = self.cfg
        dtype = x_BxTxD.dtype
        B, T, D = x_BxTxD.shape
        H, K = cfg.H, cfg.head_dim
        # One [B*T, D] x [D, 3*H*K] matmul: 2-D operands, whose gradients `dense` lays out for XLA's dot.
        w_Dx3HK = self.qkv_kernel_Dx3xHxK[...].astype(dtype).reshape(D, 3 * H * K)
        bias_3HK = self.qkv_bias_3xHxK[...].astype(dtype).reshape(-1)
        qkv_Nx3HK = dense(x_BxTxD.reshape(B * T, D), w_Dx3HK) + bias_3HK
        qkv_3xBxTxHxK = jnp.moveaxis(qkv_Nx3HK.reshape(B, T, 3, H, K), 2, 0)
        q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = (constrain(t, "heads_BxTxHxK") for t in qkv_3xBxTxHxK)
        if cfg.pos_encoding == "rope":
            q_BxTxHxK = apply_rope(q_BxTxHxK, positions_T, cfg.rope_base)
            k_BxTxHxK = apply_rope(k_BxTxHxK, positions_T, cfg.rope_base)
        return q_BxTxHxK, k_BxTxHxK, v_BxTxHxK

    def attend(
        self,
        q_BxTxHxK: jax.Array,
        k_BxSxHxK: jax.Array,
        v_BxSxHxK: jax.Array,
        visible_TxS: jax.Array,
        key: jax.Array | None,
    ) -> jax.Array:
        """Softmax attention of T queries over the S keys each may see; the heads' outputs [B, T, H, K]."""
        dtype = q_BxTxHxK.dtype
        # Head-major [B, H, T, K] puts the batch dimensions first, the layout batched dots want.
        q_BxHxTxK, k_BxHxSxK, v_BxHxSxK = (t.transpose(0, 2, 1, 3) for t in (q_BxTxHxK, k_BxSxHxK, v_BxSxHxK))
        q_BxHxTxK = q_BxHxTxK * jnp.asarray(1.0 / math.sqrt(self.cfg.head_dim), dtype)
        scores_BxHxTxS = jnp.einsum("bhtk,bhsk->bhts", q_BxHxTxK, k_BxHxSxK).astype(jnp.float32)
        scores_BxHxTxS = jnp.where(visible_TxS, scores_BxHxTxS, jnp.finfo(jnp.float32).min)
        probs_BxHxTxS = jax.nn.softmax(scores_BxHxTxS, axis=-1).astype(dtype)
        probs_BxHxTxS = dropout(probs_BxHxTxS, self.cfg.dropout, key)
        out_BxHxTxK = jnp.einsum("bhts,bhsk->bhtk", probs_BxHxTxS, v_BxHxSxK)
        return out_BxHxTxK.transpose(0, 2, 1, 3)

    def out(self, out_BxTxHxK: jax.Array) -> jax.Array:
        """The output projection of the heads' outputs, [B, T, D]."""
        B, T, H, K = out_BxTxHxK.shape
        dtype = out_BxTxHxK.dtype
        D = self.cfg.D
        w_HKxD = self.out_kernel_HxKxD[...].astype(dtype).reshape(H * K, D)
        y_NxD = dense(out_BxTxHxK.reshape(B * T, H * K), w_HKxD)
        return (y_NxD + self.out_bias_D[...].astype(dtype)).reshape(B, T, D)


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        D, F = cfg.D, cfg.F
        self.fc_kernel_DxF = nnx.Param(_normal(rngs, (D, F), cfg.init_std))
        self.fc_bias_F = nnx.Param(jnp.zeros((F,), jnp.float32))
        self.proj_kernel_FxD = nnx.Param(_normal(rngs, (F, D), cfg.init_std / math.sqrt(2 * cfg.L)))
        self.proj_bias_D = nnx.Param(jnp.zeros((D,), jnp.float32))

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        dtype = x_BxTxD.dtype
        B, T, D = x_BxTxD.shape
        x_NxD = x_BxTxD.reshape(B * T, D)  # 2-D matmuls: see Attention
        h_NxF = dense(x_NxD, self.fc_kernel_DxF[...].astype(dtype)) + self.fc_bias_F[...].astype(dtype)
        h_BxTxF = constrain(jax.nn.gelu(h_NxF, approximate=True).reshape(B, T, -1), "hidden_BxTxF")
        h_NxF = h_BxTxF.reshape(B * T, -1)
        y_NxD = dense(h_NxF, self.proj_kernel_FxD[...].astype(dtype)) + self.proj_bias_D[...].astype(dtype)
        return y_NxD.reshape(B, T, D)


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.ln1 = LayerNorm(cfg.D)
        self.attn = Attention(cfg, rngs)
        self.ln2 = LayerNorm(cfg.D)
        self.mlp = MLP(cfg, rngs)
        self.rate = cfg.dropout

    def __call__(self, x_BxTxD: jax.Array, positions_T: jax.Array, key: jax.Array | None) -> jax.Array:
        keys = jax.random.split(key, 3) if key is not None else (None, None, None)
        x_BxTxD = x_BxTxD + dropout(self.attn(self.ln1(x_BxTxD), positions_T, keys[0]), self.rate, keys[1])
        x_BxTxD = x_BxTxD + dropout(self.mlp(self.ln2(x_BxTxD)), self.rate, keys[2])
        return constrain(x_BxTxD, "act_BxTxD")


_REMAT_POLICIES = {
    "block": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_saveable,
}
# Unrolled, XLA fuses a block's elementwise work (GELU's steps, LayerNorm's) into the backward pass; inside a
# scan it cannot, and keeping every intermediate as a stacked residual (30 per block) made the step 1.7x
# slower than unrolled at D=64 on CPU. So scanned blocks under `none` keep only the weight matmuls' outputs
# (dots without batch dimensions) and recompute the rest, attention's two batched dots included: as fast as
# the unrolled step at D=64 and D=256, with less memory.
_SCANNED_POLICIES = {**_REMAT_POLICIES, "none": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}

LayerFn = Callable[[Block, Any, Any], Any]  # (block, carry, this layer's inputs) -> carry


def stack_blocks(blocks: list[Block]) -> Block:
    """One Block whose parameters are those of `blocks` stacked on a leading layer axis: the scanned
    layout. Built from the unrolled blocks, so both layouts draw the same initial numbers."""
    graphdef = nnx.graphdef(blocks[0])
    states = [nnx.state(block) for block in blocks]
    return nnx.merge(graphdef, jax.tree.map(lambda *layers: jnp.stack(layers), *states))


def run_blocks(blocks: Block | nnx.List, fn: LayerFn, carry: Any, per_layer: Any, remat: str = "none") -> Any:
    """`carry` through every block in order, `fn` getting layer i's slice of `per_layer` (a pytree of arrays
    with a leading L axis, or None). Unrolled blocks are applied one by one; stacked ones (`stack_blocks`)
    by a `jax.lax.scan` over their parameters, so the step compiles one block. `remat` wraps each block's
    application in `jax.checkpoint` with `model.remat`'s policy (unrolled none: as is; scanned none: see
    `_SCANNED_POLICIES`)."""
    if isinstance(blocks, nnx.List):
        policy = _REMAT_POLICIES.get(remat)
        apply = fn if policy is None else nnx.remat(fn, policy=policy)
        for i, block in enumerate(blocks):
            carry = apply(block, carry, jax.tree.map(lambda x, i=i: x[i], per_layer))
        return carry
    graphdef, state = nnx.split(blocks)

    def body(carry: Any, inputs: tuple[Any, Any]) -> tuple[Any, None]:
        layer_state, x = inputs
        return fn(nnx.merge(graphdef, layer_state), carry, x), None

    body = jax.checkpoint(body, policy=_SCANNED_POLICIES[remat])
    return jax.lax.scan(body, carry, (state, per_layer))[0]


class Embedding(nnx.Module):
    def __init__(self, rows: int, D: int, std: float, rngs: nnx.Rngs, name: str):
        setattr(self, name, nnx.Param(_normal(rngs, (rows, D), std)))
        self.name = name

    @property
    def table(self) -> jax.Array:
        return getattr(self, self.name)[...]


class Unembedding(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.kernel_DxV = nnx.Param(_normal(rngs, (cfg.D, cfg.V), cfg.init_std))


class GPT(nnx.Module):
    """Decoder-only transformer as in GPT-1/GPT-2 (pre-LayerNorm, GPT-2 initialisation)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.wte = Embedding(cfg.V, cfg.D, cfg.init_std, rngs, "embedding_VxD")
        if cfg.pos_encoding == "learned":
            self.wpe = Embedding(cfg.T, cfg.D, cfg.init_std, rngs, "embedding_TxD")
        blocks = [Block(cfg, rngs) for _ in range(cfg.L)]
        self.blocks = stack_blocks(blocks) if cfg.scanned else nnx.List(blocks)
        self.ln_f = LayerNorm(cfg.D)
        if not cfg.tie_embeddings:
            self.unembed = Unembedding(cfg, rngs)

    def hidden(self, tokens_BxT: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Final-LayerNorm hidden states [B, T, D] in the compute dtype."""
        cfg = self.cfg
        dtype = jnp.dtype(cfg.compute_dtype)
        T = tokens_BxT.shape[1]
        if T > cfg.T:
            raise ValueError(f"sequence length {T} exceeds the model context T={cfg.T}")
        positions_T = jnp.arange(T)
        tokens_BxT = constrain(tokens_BxT, "tokens_BxT")
        x_BxTxD = jnp.take(self.wte.table, tokens_BxT, axis=0)
        if cfg.pos_encoding == "learned":
            x_BxTxD = x_BxTxD + self.wpe.table[:T][None]
        elif cfg.pos_encoding == "sinusoidal":
            x_BxTxD = x_BxTxD + sinusoidal_table(T, cfg.D)[None]
        keys = jax.random.split(dropout_key, cfg.L + 1) if dropout_key is not None else None
        x_BxTxD = dropout(x_BxTxD, cfg.dropout, None if keys is None else keys[0])
        x_BxTxD = constrain(x_BxTxD.astype(dtype), "act_BxTxD")

        def layer(block: Block, x_BxTxD: jax.Array, key: jax.Array | None) -> jax.Array:
            return block(x_BxTxD, positions_T, key)

        layer_keys = None if keys is None else keys[1:]
        x_BxTxD = run_blocks(self.blocks, layer, x_BxTxD, layer_keys, cfg.remat)
        return self.ln_f(x_BxTxD)

    def unembedding_VxD(self, dtype: jnp.dtype) -> jax.Array:
        """The [V, D] matrix the logits are formed against: the token table when tied, else the
        unembedding kernel transposed."""
        if self.cfg.tie_embeddings:
            return self.wte.table.astype(dtype)
        return self.unembed.kernel_DxV[...].astype(dtype).T

    def logits(self, h_BxTxD: jax.Array) -> jax.Array:
        """Float32 logits: the unembedding accumulates in float32 whatever the compute dtype."""
        B, T, D = h_BxTxD.shape
        h_NxD = h_BxTxD.reshape(B * T, D)  # 2-D matmul: see Attention
        w_VxD = self.unembedding_VxD(h_BxTxD.dtype)
        out_NxV = jnp.einsum("nd,vd->nv", h_NxD, w_VxD, preferred_element_type=jnp.float32)
        return constrain(out_NxV.reshape(B, T, -1), "logits_BxTxV")

    def __call__(self, tokens_BxT: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        return self.logits(self.hidden(tokens_BxT, dropout_key))
