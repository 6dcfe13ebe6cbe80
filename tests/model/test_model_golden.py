"""Golden numbers: loss, gradient norm and update norm after one AdamW step at a fixed seed.

The values were recorded once from this code (float32, 1 CPU device). A change that moves them changed the
model, the loss, the initialisation or the optimizer: if that was intended, regenerate them with
`python tests/model/test_model_golden.py` and paste the printed dict into GOLDEN.
"""

from __future__ import annotations

import jax
import numpy as np

from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step

GOLDEN = {"loss": 5.562453269958496, "grad_norm": 1.1033504009246826, "update_norm": 0.34394070506095886}


def one_step_metrics() -> dict[str, float]:
    cfg = ModelConfig(V=256, T=32, D=64, L=2, H=4)
    tx = make_optimizer(OptimConfig(lr=1e-3, warmup_steps=0))
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    tokens_MxBxT1 = np.random.default_rng(1234).integers(0, cfg.V, (2, 4, cfg.T + 1), dtype=np.int32)
    with jax.set_mesh(mesh):
        layout = make_layout(cfg, tx, mesh)
        params, opt_state = init_state(cfg, tx, layout, seed=42)
        step = make_train_step(layout, tx, mesh)
        _, _, metrics = step(params, opt_state, tokens_MxBxT1, 0, 1e-3)
    return {name: float(metrics[name]) for name in ("loss", "grad_norm", "update_norm")}


def test_one_step_matches_recorded_values() -> None:
    metrics = one_step_metrics()
    for name, value in GOLDEN.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-4, err_msg=name)
    assert GOLDEN.keys() == metrics.keys()


if __name__ == "__main__":
    print(one_step_metrics())
