"""A sweep's tracking: its runs share one TensorBoard root and one W&B group, and its validation is
logged beside them (figure, table, each law's error), once per set of completed targets."""

from __future__ import annotations

import copy

import pytest
from matplotlib.figure import Figure

from scaling.config_io import load_config
from scaling.fitting.validate import LawValidation, ValidationRow
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from scaling.sweep.tracking import track_validation
from scaling.sweep.validation import CSV_COLUMNS, SweepValidation, csv_rows
from scaling.sweep.workflow import Sweep
from scaling.track.tracker import tensorboard_dir
from scaling.train.run_config import RunConfig
from tests.sweep.sweep_helpers import TINY_SWEEP, write_sweep
from tests.track_helpers import (
    tensorboard_scalars,
    tensorboard_tags,
    wandb_history,
    wandb_run_info,
    wandb_runs,
)


def _tracked_sweep(tmp_path, **track) -> Sweep:
    spec = copy.deepcopy(TINY_SWEEP)
    spec["base"]["track"] = track
    loaded = load_sweep(write_sweep(tmp_path / "tiny.yaml", spec))
    return Sweep(loaded, plan(loaded), Ledger(tmp_path / "sweep"))


def test_runs_share_the_sweeps_tensorboard_root_and_wandb_group(tmp_path):
    sweep = _tracked_sweep(tmp_path, tensorboard=True, wandb={"enabled": True})
    dirs = set()
    for run in sweep.ladder:
        written = load_config(RunConfig, sweep.ledger.write_config(run.config))  # what the trainer reads
        assert written.track.wandb.group == "tiny"
        directory = tensorboard_dir(written.track, sweep.ledger.run_dir(run.name), run.name)
        assert directory.resolve() == (sweep.ledger.sweep_dir / "tensorboard" / run.name).resolve()
        dirs.add(directory)
    assert len(dirs) == len(sweep.ladder) == 3
    own = _tracked_sweep(tmp_path, tensorboard="/logs/tb", wandb={"enabled": True, "group": "mine"})
    assert {(r.config.track.tensorboard, r.config.track.wandb.group) for r in own.ladder} == {
        ("/logs/tb", "mine")
    }


def _validation() -> SweepValidation:
    rows = tuple(
        ValidationRow("compute", f"target_{i}", 1e14 * (i + 1), 10.0 * (i + 1), 3.0, (2.9, 3.1), a, are, True)
        for i, (a, are) in enumerate([(3.03, 0.01), (3.09, 0.03)])
    )
    return SweepValidation("compute", (LawValidation("compute", rows, 0.8),))


def test_validation_is_logged_once_beside_the_runs(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX", reason="tensorboardX is not installed (pip install 'scaling[track]')")
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'scaling[track]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    sweep = _tracked_sweep(tmp_path, tensorboard=True, wandb={"enabled": True})
    sweep.ledger.sweep_dir.mkdir(parents=True)
    figure = sweep.ledger.sweep_dir / "validation.png"
    Figure(figsize=(2, 1)).savefig(figure)
    result = _validation()
    for _ in range(2):  # validating the same targets again logs nothing new
        track_validation(sweep, result, (CSV_COLUMNS, csv_rows(result)), figure, step=2)

    events = sweep.ledger.sweep_dir / "tensorboard" / "validation"
    scalars = tensorboard_scalars(events)  # float32
    assert scalars == {"compute/median_are": {2: pytest.approx(0.02)}, "compute/coverage": {2: 1.0}}
    tags = tensorboard_tags(events)
    assert tags["images"] == ["validation"] and "predictions/text_summary" in tags["tensors"]

    wandb_dir = sweep.ledger.root / "validation"
    (row,) = wandb_history(wandb_dir)
    assert row["_step"] == 2 and row["compute/median_are"] == pytest.approx(0.02)
    assert (row["validation/_type"], row["predictions/_type"]) == ("image-file", "table-file")
    assert row["predictions/nrows"] == 2 and row["predictions/ncols"] == len(CSV_COLUMNS)
    info = wandb_run_info(wandb_runs(wandb_dir)[0])
    assert info["group"] == "tiny" and info["name"] == "validation"
    assert info["summary"]["law"] == "compute" and info["summary"]["median_are"] == pytest.approx(0.02)
