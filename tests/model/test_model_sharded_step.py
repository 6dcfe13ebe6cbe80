"""One train step on 8 simulated CPU devices under several meshes equals the 1-device step.

JAX fixes its device count when it starts, so the 8-device work runs in a child process (this file, run
as a script) that prints its measurements as JSON; the pytest process only compares them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MESHES = [(8, 1, 1), (2, 4, 1), (2, 2, 2)]
REPO = Path(__file__).resolve().parents[2]


def _child() -> dict:
    import jax
    import optax

    from scaling.errors import UserError
    from scaling.model.config import ModelConfig
    from scaling.model.sharding import MeshConfig, make_mesh
    from scaling.train.state import init_state, make_layout
    from scaling.train.step import make_train_step

    assert jax.device_count() == 8
    cfg = ModelConfig(V=128, T=16, D=64, L=2, H=4, pos_encoding="rope", tie_embeddings=False)
    # SGD with momentum keeps a sharded optimizer state, and its first update is exactly -lr x gradient.
    # (Adam's first update, g / (|g| + eps), is ill-conditioned for near-zero gradients: it would turn
    # the last-bit differences of a differently ordered sharded reduction into visible parameter noise.)
    tx = optax.sgd(learning_rate=0.5, momentum=0.9)
    tokens_MxBxT1 = np.random.default_rng(0).integers(0, cfg.V, (2, 8, cfg.T + 1), dtype=np.int32)

    def one_step(sizes: tuple[int, int, int]) -> dict:
        devices = jax.devices()[: int(np.prod(sizes))]
        mesh = make_mesh(MeshConfig(*sizes), devices)
        with jax.set_mesh(mesh):
            layout = make_layout(cfg, tx, mesh)
            params, opt_state = init_state(cfg, tx, layout, seed=0)
            initial = jax.tree.map(np.asarray, params)
            step = make_train_step(layout, tx, mesh)
            params, _, metrics = step(params, opt_state, tokens_MxBxT1, 0, 0.5)  # sgd ignores this rate
        flat = jax.tree_util.tree_flatten_with_path(params)[0]
        return {
            "metrics": {k: float(v) for k, v in metrics.items()},
            "initial": {
                jax.tree_util.keystr(p): x.tolist() for p, x in jax.tree_util.tree_leaves_with_path(initial)
            },
            "params": {jax.tree_util.keystr(p): np.asarray(x).tolist() for p, x in flat},
            "specs": {jax.tree_util.keystr(p): str(x.sharding.spec) for p, x in flat},
        }

    out = {"single": one_step((1, 1, 1))}
    out.update({str(sizes): one_step(sizes) for sizes in MESHES})
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _secs, **_: compiles.append(event) if "backend_compile" in event else None
    )
    try:  # V=100 is the only dimension 8 tensor-parallel shards do not divide
        make_layout(cfg.replace(V=100, H=8, tie_embeddings=True), tx, make_mesh(MeshConfig(1, 1, 8)))
        out["indivisible"] = None
    except UserError as err:
        out["indivisible"] = str(err)
    out["compiles_before_error"] = len(compiles)
    return out


@pytest.fixture(scope="module")
def child_results() -> dict:
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, __file__], env=env, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("sizes", MESHES, ids=str)
def test_sharded_step_equals_single_device(child_results: dict, sizes: tuple[int, int, int]) -> None:
    single, sharded = child_results["single"], child_results[str(sizes)]
    for name in ("loss", "grad_norm", "update_norm", "tokens"):
        np.testing.assert_allclose(sharded["metrics"][name], single["metrics"][name], rtol=1e-5, err_msg=name)
    assert sharded["params"].keys() == single["params"].keys()
    for name, value in single["params"].items():
        np.testing.assert_array_equal(sharded["initial"][name], single["initial"][name], err_msg=name)
        np.testing.assert_allclose(sharded["params"][name], value, rtol=1e-5, atol=1e-8, err_msg=name)
        # The update itself (not just the parameters it moves) agrees too.
        update = np.subtract(value, single["initial"][name])
        sharded_update = np.subtract(sharded["params"][name], sharded["initial"][name])
        np.testing.assert_allclose(
            sharded_update, update, rtol=1e-4, atol=1e-4 * np.abs(update).max(), err_msg=name
        )
    assert any(spec != "PartitionSpec()" for spec in sharded["specs"].values()), "nothing was sharded"


def test_indivisible_mesh_fails_before_compiling_naming_tensor_shape_and_mesh(child_results: dict) -> None:
    message = child_results["indivisible"]
    assert message is not None, "a vocabulary of 100 was split 8 ways"
    assert "wte/embedding_VxD" in message
    assert "(100, 64)" in message
    assert "'tensor': 8" in message
    assert child_results["compiles_before_error"] == 0


if __name__ == "__main__":
    print(json.dumps(_child()))
