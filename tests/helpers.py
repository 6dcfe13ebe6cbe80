"""Shared test utilities: tiny run configs and subprocess launches with simulated devices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def tiny_run_config(cache_dir: Path, **sections) -> dict:
    """A byte-level model small enough that compile dominates: a few seconds per run on CPU."""
    cfg = {
        "name": "t",
        "model": {"V": 264, "T": 32, "D": 32, "L": 2, "H": 2},
        "data": {
            "corpus": "stdlib",
            "encoding": "bytes",
            "max_bytes": 2_000_000,
            "cache_dir": str(cache_dir),
        },
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "train": {
            "steps": 6,
            "batch_size": 8,
            "log_every": 1,
            "eval_every": 1000,
            "eval_batches": 2,
            "checkpoint_every": 5,
        },
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def scaling_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "scaling.cli", *args]


def run_env(devices: int = 1) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env["JAX_NUM_CPU_DEVICES"] = str(devices)
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_scaling(*args: str, devices: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        scaling_cmd(*args), env=run_env(devices), cwd=REPO, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"scaling {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result
