"""A population trains each member bit for bit as the run trained alone (losses every step, final
parameters), with different learning rates, seeds and lengths; a diverged member stops alone; a killed
population (stopped by SIGTERM, then killed) resumes, each member from its own checkpoint, to the
uninterrupted result."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from scaling.use.generate import load_run
from tests.helpers import (
    finished_checkpoints,
    kill_at_checkpoint,
    run_scaling,
    start_scaling,
    tiny_run_config,
    wait_for_checkpoint,
    write_config,
)
from tests.train.test_train_resume import losses

# Two members of one shape that differ in rate, schedule, seed, length and checkpoint cadence (so a kill
# leaves them at different checkpoints), and one whose rate makes it diverge at once.
MEMBERS = {
    "a": {"optim": {"lr": 3e-3}, "train": {"steps": 20, "seed": 0, "checkpoint_every": 5}},
    "b": {"optim": {"lr": 1e-2, "warmup_steps": 4}, "train": {"steps": 16, "seed": 7, "checkpoint_every": 4}},
    "wild": {"optim": {"lr": 1e30}, "train": {"steps": 20, "seed": 1, "checkpoint_every": 5}},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_cache) -> Path:
    """Configs, the members trained alone (`solo-NAME`) and as one population (`pop-NAME`)."""
    root = tmp_path_factory.mktemp("population")
    for name, sections in MEMBERS.items():
        write_config(root / f"{name}.yaml", tiny_run_config(data_cache, name=name, **sections))
    for name in ("a", "b"):
        run_scaling("train", str(root / f"{name}.yaml"), "--out", str(root / f"solo-{name}"), "--no-progress")
    configs = [str(root / f"{name}.yaml") for name in MEMBERS]
    outs = [str(root / f"pop-{name}") for name in MEMBERS]
    result = run_scaling("train-population", *configs, "--out", *outs, "--no-progress", check=False)
    assert result.returncode == 1, result.stderr  # one member diverged
    lines = {row["run"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert {name: row["status"] for name, row in lines.items()} == {
        "a": "completed",
        "b": "completed",
        "wild": "diverged",
    }
    return root


def _final_params(run_dir: Path) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(load_run(run_dir).params)]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("name", ["a", "b"])
def test_member_equals_the_run_trained_alone(trained, name):
    solo, member = trained / f"solo-{name}", trained / f"pop-{name}"
    assert losses(member) == losses(solo)  # bitwise: JSON keeps every float's exact repr
    assert sorted(losses(member)) == list(range(1, MEMBERS[name]["train"]["steps"] + 1))
    for got, want in zip(_final_params(member), _final_params(solo), strict=True):
        np.testing.assert_array_equal(got, want)
    assert finished_checkpoints(member) == finished_checkpoints(solo)
    keys = ("status", "steps", "tokens", "flops", "final_train_loss", "final_val_loss", "params")
    assert {k: _summary(member)[k] for k in keys} == {k: _summary(solo)[k] for k in keys}


def test_diverged_member_is_marked_and_stops_alone(trained):
    summary = _summary(trained / "pop-wild")
    assert summary["status"] == "diverged" and summary["steps"] < MEMBERS["wild"]["train"]["steps"]
    assert "member wild: diverged" in (trained / "pop-a" / "train.log").read_text()


def test_stopped_then_killed_population_resumes_to_the_uninterrupted_result(trained, tmp_path):
    configs = [str(trained / f"{name}.yaml") for name in ("a", "b")]
    outs = [tmp_path / "a", tmp_path / "b"]
    command = ("train-population", *configs, "--out", *map(str, outs), "--no-progress")
    proc = start_scaling(*command)
    wait_for_checkpoint(proc, outs[0], 5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 1  # stopped in the loop: every member checkpointed where it stood
    for out in outs:
        summary = _summary(out)
        assert summary["status"] == "interrupted"
        assert finished_checkpoints(out)[-1] == summary["steps"]
    proc = start_scaling(*command)
    kill_at_checkpoint(proc, outs[0], 15)
    run_scaling(*command)
    for name, out in zip(("a", "b"), outs, strict=True):
        assert losses(out) == losses(trained / f"solo-{name}")
        for got, want in zip(_final_params(out), _final_params(trained / f"solo-{name}"), strict=True):
            np.testing.assert_array_equal(got, want)
        assert _summary(out)["status"] == "completed"
