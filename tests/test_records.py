"""scaling.records: the one reader of metrics.jsonl and the typed summary, against hand-written files."""

import dataclasses
import json

import pytest

from scaling.errors import UserError
from scaling.records import RunSummary, json_line, read_metrics, read_summary


def _summary(**changes) -> RunSummary:
    values = {f.name: 1 for f in dataclasses.fields(RunSummary)}
    values.update(
        name="r", status="completed", peak_flops_source="table", encoding="bytes", data_fingerprint="ab"
    )
    values.update({"final_val_loss": 2.5, "mfu": float("nan"), **changes})
    return RunSummary(**values)


def test_metrics_tolerate_only_a_cut_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": i, "train_loss": 3.0 - i / 10} for i in range(1, 4)]
    path.write_text("".join(json_line(r) for r in rows) + '{"step": 4, "tra')
    assert read_metrics(path) == rows
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{corrupt", *lines[1:3]]) + "\n")
    with pytest.raises(UserError, match=r"metrics.jsonl:2 is not valid JSON, with 2 rows after it"):
        read_metrics(path)
    assert read_metrics(tmp_path / "absent.jsonl") == []


def test_summary_round_trips_with_non_finite_as_null(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(_summary().to_json())
    data = json.loads(path.read_text())
    assert data["mfu"] is None and data["final_val_loss"] == 2.5
    assert read_summary(path) == _summary(mfu=None)
    assert read_summary(tmp_path / "none.json") is None


def test_summary_missing_keys_or_damaged_is_a_one_line_error(tmp_path):
    path = tmp_path / "summary.json"
    data = json.loads(_summary().to_json())
    del data["flops"], data["tokens"]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="no tokens, flops"):
        read_summary(path)
    path.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        read_summary(path)
