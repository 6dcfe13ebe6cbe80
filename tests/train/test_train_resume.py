"""Exact resume: a run killed with SIGKILL and resumed replays the uninterrupted run bit for bit, and a
checkpoint restores onto another mesh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import (
    finished_checkpoints,
    kill_at_checkpoint,
    run_scaling,
    start_scaling,
    tiny_run_config,
    write_config,
)


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)), f"metrics steps not unique and increasing: {steps}"
    return {r["step"]: r["train_loss"] for r in rows}


def test_sigkill_then_resume_matches_uninterrupted_run_bitwise(tmp_path, data_cache):
    cfg = write_config(
        tmp_path / "run.yaml",
        tiny_run_config(data_cache, train={"steps": 20, "checkpoint_every": 5}),
    )
    straight = tmp_path / "straight"
    run_scaling("train", str(cfg), "--out", str(straight), "--no-progress")

    killed = tmp_path / "killed"
    proc = start_scaling("train", str(cfg), "--out", str(killed), "--no-progress")
    kill_at_checkpoint(proc, killed, 10)
    assert (
        not (killed / "summary.json").exists()
        or json.loads((killed / "summary.json").read_text())["status"] != "completed"
    )

    run_scaling("train", str(cfg), "--out", str(killed), "--no-progress")
    expected, resumed = losses(straight), losses(killed)
    assert sorted(resumed) == list(range(1, 21))
    assert resumed == expected  # bitwise: JSON keeps every float's exact repr
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["tokens"] == 20 * 8 * 32


@pytest.mark.parametrize(("saved_on", "resumed_on"), [(8, 1), (1, 8)])
def test_restore_under_another_mesh_gives_same_next_step_loss(tmp_path, data_cache, saved_on, resumed_on):
    meshes = {8: {"data": 2, "fsdp": 2, "tensor": 2}, 1: {"data": 1, "fsdp": 1, "tensor": 1}}
    cfg = tiny_run_config(data_cache, train={"steps": 6, "checkpoint_every": 5})
    original = tmp_path / "original"
    path = write_config(tmp_path / "a.yaml", {**cfg, "mesh": meshes[saved_on]})
    run_scaling("train", str(path), "--out", str(original), "--no-progress", devices=saved_on)
    assert finished_checkpoints(original) == [5, 6]

    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    shutil.rmtree(moved / "checkpoints" / "6")
    (moved / "summary.json").unlink()
    path = write_config(tmp_path / "b.yaml", {**cfg, "mesh": meshes[resumed_on]})
    run_scaling("train", str(path), "--out", str(moved), "--no-progress", devices=resumed_on)

    before, after = losses(original), losses(moved)
    assert after[5] == before[5]  # rows up to the checkpoint are kept as recorded
    assert after[6] == pytest.approx(before[6], rel=1e-5)
    assert json.loads((moved / "summary.json").read_text())["devices"] == resumed_on
