"""results.csv and the status table before anything has run: every planned run, none counted finished."""

from __future__ import annotations

import csv

from scaling.cli import main
from scaling.sweep.collect import COLUMNS
from tests.sweep.sweep_helpers import TINY_SWEEP, write_sweep


def test_collect_lists_every_planned_run_without_losses(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "tiny.yaml", TINY_SWEEP)
    out = tmp_path / "sweep"
    assert main(["sweep", "collect", str(sweep), "--out", str(out)]) == 0
    with (out / "results.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames[: len(COLUMNS)]) == COLUMNS
    assert [r["name"] for r in rows] == ["n3.31K_t38.4K", "n12.8K_t38.4K", "n25.5K_t38.4K"]
    assert {r["status"] for r in rows} == {"pending"}
    assert {r["loss"] for r in rows} == {""}
    assert [r["run_dir"] for r in rows] == [r["name"] for r in rows]
    capsys.readouterr()
    assert main(["sweep", "status", str(sweep), "--out", str(out)]) == 0
    assert "3 pending" in capsys.readouterr().out
