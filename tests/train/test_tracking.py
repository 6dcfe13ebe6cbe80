"""Experiment tracking, read back: TensorBoard events and an offline W&B run hold exactly the rows of
metrics.jsonl, each step once however often the run resumes; tracking off writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scaling.config_io import from_dict
from scaling.errors import UserError
from scaling.records import read_metrics
from scaling.track import tracker
from scaling.track.config import TrackConfig, WandbConfig
from scaling.train.loop import train
from scaling.train.run_config import RunConfig
from tests.helpers import tiny_run_config
from tests.track_helpers import tensorboard_scalars, wandb_history, wandb_run_info, wandb_runs

BOTH = {"tensorboard": True, "wandb": {"enabled": True, "project": "tests", "group": "g"}}
RUN_FILES = {"config.yaml", "metrics.jsonl", "summary.json", "train.log", "checkpoints", ".lock"}


@pytest.fixture
def trackers(monkeypatch):
    for package in ("tensorboardX", "wandb"):
        pytest.importorskip(package, reason=f"{package} is not installed (pip install 'scaling[track]')")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")  # never the network, whatever the config says


def _train(data_cache: Path, out: Path, track: dict | None = None, **train_keys):
    raw = tiny_run_config(data_cache, train={"steps": 4, "checkpoint_every": 2, **train_keys})
    if track is not None:
        raw["track"] = track
    return train(from_dict(RunConfig, raw), out, progress=False)


def _by_step(rows: list[dict], key: str) -> dict[int, float]:
    return {row["step"]: row[key] for row in rows if row.get(key) is not None}


def test_tensorboard_and_offline_wandb_hold_every_logged_row(tmp_path, data_cache, trackers):
    run = tmp_path / "run"
    summary = _train(data_cache, run, BOTH)
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]

    scalars = tensorboard_scalars(run / "tensorboard")
    for key in ("train_loss", "lr", "grad_norm"):  # TensorBoard keeps float32
        assert scalars[key] == pytest.approx(_by_step(rows, key), rel=1e-6)
    assert scalars["val_loss"] == pytest.approx({4: summary.final_val_loss}, rel=1e-6)

    (file,) = wandb_runs(run)
    history = wandb_history(run)
    assert [h["_step"] for h in history] == [1, 2, 3, 4]
    assert {h["_step"]: h["train_loss"] for h in history} == _by_step(rows, "train_loss")  # exact
    info = wandb_run_info(file)
    state = json.loads((run / "track.json").read_text())
    named = (info["id"], info["group"], info["name"], info["project"])
    assert named == (state["wandb_id"], "g", "t", "tests")
    assert info["summary"]["final_val_loss"] == summary.final_val_loss
    assert info["summary"]["status"] == "completed"


@pytest.mark.slow  # three sessions of a run
def test_off_writes_nothing_then_a_resume_logs_each_new_step_once(tmp_path, data_cache, trackers):
    run = tmp_path / "run"
    _train(data_cache, run)  # tracking off
    assert {p.name for p in run.iterdir()} == RUN_FILES

    def redo_last_two_steps():  # the run as killed after its checkpoint at step 2
        shutil.rmtree(run / "checkpoints" / "4")
        (run / "summary.json").unlink()

    redo_last_two_steps()
    _train(data_cache, run, BOTH)  # turning tracking on is no other run: it logs what it trains
    redo_last_two_steps()
    _train(data_cache, run, BOTH)  # redoes steps 3 and 4, already logged: not again

    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    expected = {s: v for s, v in _by_step(rows, "train_loss").items() if s > 2}
    assert tensorboard_scalars(run / "tensorboard")["train_loss"] == pytest.approx(expected, rel=1e-6)
    files = wandb_runs(run)
    assert len(files) == 2 and len({wandb_run_info(f)["id"] for f in files}) == 1  # one W&B run, resumed
    history = wandb_history(run)
    assert [h["_step"] for h in history] == [3, 4]
    assert {h["_step"]: h["train_loss"] for h in history} == expected


def test_a_diverged_run_closes_its_trackers_with_its_status(tmp_path, data_cache, trackers):
    raw = tiny_run_config(data_cache, optim={"lr": 1e30, "warmup_steps": 0}, train={"steps": 4})
    raw["track"] = {"tensorboard": "../tb", "wandb": {"enabled": True}}
    diverged = train(from_dict(RunConfig, raw), tmp_path / "bad", progress=False)
    assert diverged.status == "diverged"
    (file,) = wandb_runs(tmp_path / "bad")
    assert wandb_run_info(file)["summary"]["status"] == "diverged"
    assert (tmp_path / "tb" / "t").is_dir()  # a shared root: one directory per run name


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    installed = {"tensorboardX"}  # and not wandb, whatever this machine has
    monkeypatch.setattr(
        tracker.importlib.util, "find_spec", lambda name: object() if name in installed else None
    )
    cfg = from_dict(TrackConfig, {"wandb": {"enabled": True}})
    with pytest.raises(UserError, match=r"track.wandb.enabled needs the wandb package.*scaling\[track\]"):
        tracker.check_installed(cfg)
    tracker.check_installed(from_dict(TrackConfig, {"tensorboard": True}))


def test_a_branch_names_shared_directories_from_its_own_place():
    cfg = TrackConfig(tensorboard="../tb", wandb=WandbConfig(dir="w"))
    moved = cfg.relocated("../..")
    run, branch = Path("/r/run"), Path("/r/run/branches/step5")
    assert (branch / moved.tensorboard).resolve() == (run / cfg.tensorboard).resolve()
    assert (branch / moved.wandb.dir).resolve() == (run / "w").resolve()
    assert TrackConfig(tensorboard="/abs").relocated("..").tensorboard == "/abs"
