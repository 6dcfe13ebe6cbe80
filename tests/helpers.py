"""Shared test utilities: tiny run configs and subprocess launches with simulated devices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def start_scaling(*args: str, output: bool = False) -> subprocess.Popen:
    """`scaling ARGS` in the background, for a test that stops it; `output`: stdout and stderr as one text
    stream (else stdout dropped, stderr piped as bytes)."""
    if output:
        streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    else:
        streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    return subprocess.Popen(scaling_cmd(*args), env=run_env(), cwd=REPO, **streams)


def finished_checkpoints(run_dir: Path) -> list[int]:
    directory = run_dir / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    """Return as soon as `run_dir` holds a checkpoint at or after `step` (or `proc` has ended)."""
    deadline = time.monotonic() + 300
    while max(finished_checkpoints(run_dir), default=0) < step and proc.poll() is None:
        assert time.monotonic() < deadline, f"{run_dir} never reached step {step}"
        time.sleep(0.02)


def kill_at_checkpoint(proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    """SIGKILL `proc` as soon as `run_dir` holds a checkpoint at or after `step`."""
    wait_for_checkpoint(proc, run_dir, step)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{run_dir} finished before it could be killed"
