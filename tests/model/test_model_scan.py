"""Scanned blocks (`model.scan_layers`) against the unrolled decoder built from the same seed: the same
initial numbers, loss, gradients (with remat and dropout), counts, FLOPs, cached decoding and, on 8
simulated devices, the same sharded train step.

The 8-device part runs in a child process (this file, run as a script), as in test_model_sharded_step.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from scaling.model.config import SCAN_MIN_LAYERS, ModelConfig
from scaling.model.decode import empty_cache, forward_cached
from scaling.model.decoder import GPT
from scaling.model.layers import layers_of, relayout
from scaling.model.sharding import MeshConfig, make_mesh, param_key
from scaling.model.traced_matmuls import matmuls_of, total_flops
from scaling.train.state import make_layout
from scaling.train.step import loss_sum

REPO = Path(__file__).resolve().parents[2]
CFG = ModelConfig(V=97, T=16, D=32, L=3, H=2, pos_encoding="rope", tie_embeddings=False)


def _both(cfg: ModelConfig) -> dict[bool, tuple]:
    """(graphdef, params) of the unrolled (False) and scanned (True) model, both from seed 0."""
    return {
        scan: nnx.split(GPT(cfg.replace(scan_layers=scan), nnx.Rngs(0)), nnx.Param) for scan in (False, True)
    }


def _assert_trees_close(actual, expected, rtol: float = 1e-5) -> None:
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(expected)[0]]
    for path, a, e in zip(paths, jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        scale = float(np.abs(e).max())
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=path)


def test_scan_is_on_from_the_stated_depth_unless_set() -> None:
    assert not ModelConfig(L=SCAN_MIN_LAYERS - 1).scanned
    assert ModelConfig(L=SCAN_MIN_LAYERS).scanned
    assert ModelConfig(L=1, scan_layers=True).scanned
    assert not ModelConfig(L=64, scan_layers=False).scanned
    # Resolution follows the depth of each shape, not the config it was copied from.
    assert ModelConfig(L=2).replace(L=32).scanned


def test_scanned_model_stacks_the_unrolled_models_numbers() -> None:
    models = _both(CFG)
    (_, unrolled), (_, scanned) = models[False], models[True]
    assert layers_of(unrolled) == "unrolled" and layers_of(scanned) == "scanned"
    kernel = scanned["blocks"]["attn"]["qkv_kernel_Dx3xHxK"][...]
    assert kernel.shape == (CFG.L, CFG.D, 3, CFG.H, CFG.head_dim)
    for i in range(CFG.L):
        np.testing.assert_array_equal(kernel[i], unrolled["blocks"][i]["attn"]["qkv_kernel_Dx3xHxK"][...])
    for name in ("wte", "unembed", "ln_f"):
        jax.tree.map(np.testing.assert_array_equal, scanned[name], unrolled[name])
    # Converting either way gives the other layout's own tree, exactly.
    jax.tree.map(np.testing.assert_array_equal, relayout(unrolled, scanned), scanned)
    jax.tree.map(np.testing.assert_array_equal, relayout(scanned, unrolled), unrolled)


def test_counts_and_forward_flops_match_across_layouts_and_scan_recomputes_attention_dots() -> None:
    """Same parameters and forward matmuls; the scanned backward also recomputes attention's two batched
    dots (its `none` policy keeps only the weight matmuls' outputs), 4·T·D per token and layer more."""
    B, T, D, L = 2, CFG.T, CFG.D, CFG.L
    tokens_BxT1 = jnp.zeros((B, T + 1), jnp.int32)
    forward, training = {}, {}
    for scan, (graphdef, params) in _both(CFG).items():
        assert sum(math.prod(x.shape) for x in jax.tree.leaves(params)) == CFG.params
        loss = lambda p, g=graphdef: loss_sum(g, p, tokens_BxT1, None)[0]  # noqa: E731
        forward[scan] = total_flops(matmuls_of(loss, params)) / (B * T)
        training[scan] = total_flops(matmuls_of(jax.value_and_grad(loss), params)) / (B * T)
    assert forward[True] == forward[False]  # the scan's body counted L times
    assert forward[True] == pytest.approx(CFG.forward_flops_per_token, rel=0.02)
    assert training[True] - training[False] == 4 * T * D * L


@pytest.mark.parametrize(("remat", "dropout"), [("none", 0.0), ("block", 0.0), ("dots", 0.2)])
def test_scanned_loss_and_gradients_equal_unrolled(remat: str, dropout: float) -> None:
    cfg = CFG.replace(remat=remat, dropout=dropout)
    tokens_BxT1 = jax.random.randint(jax.random.key(1), (4, cfg.T + 1), 0, cfg.V)
    key = jax.random.key(2) if dropout else None
    models = _both(cfg)
    results = {}
    for scan, (graphdef, params) in models.items():
        grad_fn = jax.value_and_grad(lambda p, g=graphdef: loss_sum(g, p, tokens_BxT1, key)[0])
        results[scan] = jax.jit(grad_fn)(params)
    (loss, grads), (scanned_loss, scanned_grads) = results[False], results[True]
    np.testing.assert_allclose(scanned_loss, loss, rtol=1e-5)
    _assert_trees_close(relayout(scanned_grads, grads), grads)
    if dropout:  # the keys reach the layers: the loss is not the dropout-free one
        no_dropout = jax.jit(lambda p: loss_sum(models[True][0], p, tokens_BxT1, None)[0])(models[True][1])
        assert abs(float(no_dropout) - float(loss)) > 1e-3


def _primitives(jaxpr, inside_scan: bool = False) -> set[tuple[str, bool]]:
    found = set()
    for eqn in jaxpr.eqns:
        found.add((eqn.primitive.name, inside_scan))
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= _primitives(inner, inside_scan or eqn.primitive.name == "scan")
    return found


def test_remat_is_applied_inside_the_scan() -> None:
    graphdef, params = _both(CFG.replace(remat="block"))[True]
    tokens_BxT1 = jnp.zeros((2, CFG.T + 1), jnp.int32)
    grad_fn = jax.grad(lambda p: loss_sum(graphdef, p, tokens_BxT1, None)[0])
    found = _primitives(jax.make_jaxpr(grad_fn)(params).jaxpr)
    assert ("scan", False) in found
    assert found & {("checkpoint", True), ("remat2", True), ("remat", True)}, (
        "no rematerialisation in the scan"
    )


def test_stacked_params_and_moments_take_the_layer_spec_with_an_unsharded_layer_axis() -> None:
    tx = optax.adamw(1e-3)
    mesh = make_mesh(MeshConfig(1, 1, 1))
    layouts = {scan: make_layout(CFG.replace(scan_layers=scan), tx, mesh) for scan in (False, True)}
    unrolled = {
        param_key(p): s.spec for p, s in jax.tree_util.tree_leaves_with_path(layouts[False].param_shardings)
    }
    scanned = {
        param_key(p): s.spec for p, s in jax.tree_util.tree_leaves_with_path(layouts[True].param_shardings)
    }
    assert scanned["blocks/attn/qkv_kernel_Dx3xHxK"] == P(None, "fsdp", None, "tensor", None)
    for key, spec in scanned.items():
        expected = unrolled[key.replace("blocks/", "blocks/*/")]
        assert spec == (P(None, *expected) if key.startswith("blocks/") else expected), key
    moments = jax.tree_util.tree_leaves_with_path(layouts[True].opt_shardings)
    nu = {param_key(p[2:]): s.spec for p, s in moments if getattr(p[1], "name", None) == "nu"}
    assert nu == scanned


def test_cached_decoding_of_a_scanned_model_equals_the_unrolled_forward() -> None:
    models = _both(CFG)
    tokens_BxT = jax.random.randint(jax.random.key(3), (2, 12), 0, CFG.V)
    graphdef, params = models[False]
    full_BxTxV = np.asarray(nnx.merge(graphdef, params)(tokens_BxT))
    scanned = nnx.merge(*models[True])
    step = jax.jit(lambda model, tokens, cache, start: forward_cached(model, tokens, cache, start))
    logits_BxPxV, cache = step(scanned, tokens_BxT[:, :5], empty_cache(scanned, 2, 12), 0)
    np.testing.assert_allclose(logits_BxPxV, full_BxTxV[:, :5], rtol=1e-5, atol=1e-5)
    for t in range(5, 12):
        logits_Bx1xV, cache = step(scanned, tokens_BxT[:, t : t + 1], cache, jnp.int32(t))
        np.testing.assert_allclose(logits_Bx1xV[:, 0], full_BxTxV[:, t], rtol=1e-5, atol=1e-5)


def _child() -> dict:
    from scaling.train.state import init_state
    from scaling.train.step import make_train_step

    assert jax.device_count() == 8
    cfg = ModelConfig(V=64, T=8, D=32, L=2, H=2, pos_encoding="rope", tie_embeddings=False)
    tx = optax.sgd(learning_rate=0.5, momentum=0.9)  # see test_model_sharded_step for why not Adam
    tokens_MxBxT1 = np.random.default_rng(0).integers(0, cfg.V, (2, 8, cfg.T + 1), dtype=np.int32)
    mesh = make_mesh(MeshConfig(2, 2, 2))
    out = {}
    with jax.set_mesh(mesh):
        unrolled = make_layout(cfg.replace(scan_layers=False), tx, mesh)
        for scan in (False, True):
            layout = make_layout(cfg.replace(scan_layers=scan), tx, mesh)
            params, opt_state = init_state(layout.model, tx, layout, seed=0)
            params, _, metrics = make_train_step(layout, tx, mesh)(params, opt_state, tokens_MxBxT1, 0, 0.5)
            flat = jax.tree_util.tree_leaves_with_path(relayout(params, unrolled.abstract_params))
            out[str(scan)] = {
                "metrics": {k: float(v) for k, v in metrics.items()},
                "params": {jax.tree_util.keystr(p): np.asarray(x).tolist() for p, x in flat},
                "sharded": any(s.spec != P() for s in jax.tree.leaves(layout.param_shardings)),
            }
    return out


def test_sharded_scanned_step_equals_unrolled_step_on_8_devices() -> None:
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, __file__], env=env, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.splitlines()[-1])
    unrolled, scanned = results["False"], results["True"]
    assert scanned["sharded"]
    for name in ("loss", "grad_norm", "update_norm", "tokens"):
        np.testing.assert_allclose(
            scanned["metrics"][name], unrolled["metrics"][name], rtol=1e-5, err_msg=name
        )
    assert scanned["params"].keys() == unrolled["params"].keys()
    for name, value in unrolled["params"].items():
        np.testing.assert_allclose(scanned["params"][name], value, rtol=1e-5, atol=1e-7, err_msg=name)


if __name__ == "__main__":
    print(json.dumps(_child()))
