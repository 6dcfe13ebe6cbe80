"""Tiny random-init models, and run directories saved through the real CheckpointStore (no training)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scaling.config_io import to_dict
from scaling.data import DataConfig
from scaling.model.config import ModelConfig
from scaling.train.checkpoint import CheckpointStore
from scaling.train.optimizer import make_optimizer
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import RunDir
from scaling.train.state import abstract_params

SHARED = Path(__file__).resolve().parents[3] / "shared"
GUTENBERG = SHARED / "data" / "gutenberg"

# Byte-level: no tokenizer files needed. The context is small so that every test compiles in seconds.
TINY = ModelConfig(V=257, T=24, D=32, L=2, H=2, tie_embeddings=False)


def random_params(cfg: ModelConfig, seed: int = 0, std: float = 0.3):
    """(graphdef, params) filled from numpy: much faster than tracing the initialiser on a busy CPU.

    LayerNorm scales sit around 1 and everything else around 0, with a large spread so logits differ.
    """
    graphdef, shapes = abstract_params(cfg)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        noise = rng.normal(0.0, std, leaf.shape).astype(np.float32)
        return jnp.asarray(noise + (1.0 if "scale" in jax.tree_util.keystr(path) else 0.0))

    return graphdef, jax.tree_util.tree_map_with_path(fill, shapes)


def save_run(path: Path, params, cfg: ModelConfig = TINY, step: int = 7) -> Path:
    """A run directory as `scaling train` leaves it: config.yaml and one orbax checkpoint."""
    config = RunConfig(name="tiny", model=cfg, data=DataConfig(encoding="bytes"))
    RunDir(path).claim(to_dict(config))
    store = CheckpointStore(path / "checkpoints", keep=1)
    opt_state = make_optimizer(config.optim).init(params)
    store.save(step, params, opt_state, {"step": step, "encoding": "bytes", "vocab_size": 257})
    store.close()
    return path
