"""Two processes x two CPU devices joined by jax.distributed train exactly like one process x four."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.helpers import REPO, run_env, run_scaling, scaling_cmd, tiny_run_config, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").open())}


def test_two_processes_match_one_process_with_the_same_devices(tmp_path, data_cache):
    cfg = tiny_run_config(data_cache, train={"steps": 4, "checkpoint_every": 2})
    path = write_config(tmp_path / "run.yaml", {**cfg, "mesh": {"data": 2, "fsdp": 2, "tensor": 1}})
    single = tmp_path / "single"
    run_scaling("train", str(path), "--out", str(single), "--no-progress", devices=4)

    multi = tmp_path / "multi"
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen(
            scaling_cmd(
                "train",
                str(path),
                "--out",
                str(multi),
                "--no-progress",
                "--coordinator",
                coordinator,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ),
            env=run_env(devices=2),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]

    summary = json.loads((multi / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 4
    expected, got = losses(single), losses(multi)
    assert sorted(got) == [1, 2, 3, 4]
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-5)
