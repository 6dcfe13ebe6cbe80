"""Tiny sweep files and launcher processes for the sweep tests.

Runs are byte-level models of a few thousand parameters on 300 KB of the stdlib corpus, so JAX start-up
and compilation dominate; every launcher shares one persistent compilation cache to keep relaunches cheap.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

TINY_SWEEP = {
    "name": "tiny",
    "base": {
        "model": {"V": 257, "T": 32},
        "data": {"corpus": "stdlib", "encoding": "bytes", "max_bytes": 300_000},
        "train": {
            "log_every": 10,
            "eval_every": 100_000,
            "eval_batches": 2,
            "checkpoint_every": 20,
            "keep_checkpoints": 1,
        },
    },
    "recipe": {
        "name": "test",
        "shape": {"aspect_ratio": 16, "head_dim": 16, "mlp_ratio": 4, "max_layers": 2},
        "batch_size": 8,
        "micro_batches": 1,
        "lr": {"peak": 3e-3, "reference_params": 1e4, "exponent": 0.3},
        "warmup_fraction": 0.1,
        "schedule": "cosine",
        "min_lr_ratio": 0.1,
        "decay_fraction": 0.2,
        "min_steps": 10,
    },
    "grid": {"explicit": {"params": [3e3, 1.2e4, 2.8e4], "tokens": [3.84e4]}},
    "launch": {"platform": "cpu", "workers": 2, "devices_per_run": 1, "assumed_mfu": 0.05},
}


def sweep_dict(**changes) -> dict:
    """A deep copy of the tiny sweep with top-level sections replaced or updated."""
    spec = copy.deepcopy(TINY_SWEEP)
    for key, value in changes.items():
        spec[key] = value
    return spec


def write_sweep(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def launcher(sweep: Path, out: Path, cache: Path, *extra: str) -> subprocess.Popen:
    """`scaling sweep run` as a subprocess (so a test can SIGKILL it)."""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "scaling.cli", "sweep", "run", str(sweep), "--out", str(out)]
    return subprocess.Popen(
        [*command, "--no-progress", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
