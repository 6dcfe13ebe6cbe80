"""Learning, not only running: a short run on real text beats the unigram entropy of its corpus."""

from __future__ import annotations

import numpy as np

from scaling.config_io import from_dict
from scaling.data import load_dataset
from scaling.train.loop import train
from scaling.train.run_config import RunConfig
from tests.helpers import tiny_run_config


def unigram_entropy_nats(tokens: np.ndarray, vocab: int) -> float:
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_validation_loss_falls_well_below_unigram_entropy(tmp_path, data_cache):
    raw = tiny_run_config(
        data_cache,
        model={"V": 264, "T": 64, "D": 64, "L": 2, "H": 2},
        optim={"lr": 5e-3, "warmup_steps": 10},
        train={
            "steps": 400,
            "batch_size": 32,
            "log_every": 100,
            "eval_every": 400,
            "eval_batches": 8,
            "checkpoint_every": 400,
        },
    )
    raw["data"]["max_bytes"] = None  # the whole stdlib corpus: ~700 files, 37 held out whole
    cfg = from_dict(RunConfig, raw)
    summary = train(cfg, tmp_path / "run", progress=False)
    entropy = unigram_entropy_nats(load_dataset(cfg.data, progress=False).train, cfg.model.V)
    assert summary.completed
    # Bytes of Python source carry ~3.2 nats as a unigram model; 400 steps of context must buy >= 0.5 nats.
    assert summary.final_val_loss < entropy - 0.5, (summary.final_val_loss, entropy)
