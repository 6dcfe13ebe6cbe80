"""Reading tables: formats, column mapping, conventions, and every kind of bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from scaling.errors import UserError
from scaling.fitting.table import ColumnMap, FitWarning, frontier_mask, load_table


def _frame(n=6):
    N = np.geomspace(1e6, 1e8, n)
    return pd.DataFrame(
        {
            "name": [f"r{i}" for i in range(n)],
            "status": ["completed"] * n,
            "params": N * 1.2,
            "params_nonembedding": N,
            "tokens": 20 * N,
            "flops": 6.5 * N * 20 * N,
            "loss": np.linspace(4.0, 3.0, n),
        }
    )


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_formats_and_conventions(tmp_path, suffix):
    frame = _frame()
    path = tmp_path / f"t.{suffix}"
    {
        "csv": lambda: frame.to_csv(path, index=False),
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(path),
    }[suffix]()
    t = load_table(path)
    np.testing.assert_allclose(t.N, frame["params_nonembedding"], rtol=1e-9)  # pandas JSON keeps 10 digits
    np.testing.assert_allclose(t.C, frame["flops"], rtol=1e-9)
    assert t.flops_per_param_token == pytest.approx(6.5)
    t = load_table(path, params="total", flops="6nd")
    np.testing.assert_allclose(t.N, frame["params"])
    np.testing.assert_allclose(t.C, 6 * frame["params"] * frame["tokens"])
    assert len(t.sha256) == 64


def test_published_table_with_other_column_names(tmp_path):
    frame = pd.DataFrame(
        {"Model Size": [1e8, 2e8, 4e8], "Training Tokens": [1e9, 2e9, 4e9], "Loss": [3, 2.9, 2.8]}
    )
    path = tmp_path / "paper.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"no total parameter count column 'params'.*--params-col"):
        load_table(path, params="total", flops="6nd")
    cols = ColumnMap(params="Model Size", tokens="Training Tokens", loss="Loss")
    t = load_table(path, columns=cols, params="total", flops="6nd")
    np.testing.assert_array_equal(t.L, [3, 2.9, 2.8])
    with pytest.raises(UserError, match=r"no FLOPs column.*--flops 6nd"):
        load_table(path, columns=cols, params="total")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -3.0])
@pytest.mark.parametrize("column", ["loss", "params_nonembedding", "tokens", "flops"])
def test_invalid_values_are_errors_or_announced_drops(tmp_path, bad, column):
    frame = _frame()
    frame.loc[2, column] = bad
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"invalid values.*r2.*--drop-invalid"):
        load_table(path)
    with pytest.warns(FitWarning, match="dropped 1 rows"):
        t = load_table(path, drop_invalid=True)
    assert "r2" not in t.names and len(t) == 5


def test_duplicates(tmp_path):
    frame = _frame()
    path = tmp_path / "t.csv"
    pd.concat([frame, frame.iloc[[1]]]).to_csv(path, index=False)
    with pytest.warns(FitWarning, match="dropped 1 duplicate rows"):
        assert len(load_table(path)) == 6
    clash = frame.copy()
    clash.loc[3, "name"] = "r1"
    clash.to_csv(path, index=False)
    with pytest.raises(UserError, match="appear with different results"):
        load_table(path)


def test_non_completed_runs_are_skipped_with_a_warning(tmp_path):
    frame = _frame()
    frame.loc[0, "status"] = "diverged"
    frame.loc[1, "status"] = "running"
    frame.loc[1, "loss"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(FitWarning, match="skipped 2 of 6 runs by status"):
        assert len(load_table(path)) == 4


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(UserError, match="unknown table format"):
        load_table(tmp_path / "t.txt")


def test_sweep_directory_of_summaries(tmp_path):
    for i, status in enumerate(["completed", "completed", "failed"]):
        run = tmp_path / "sweep" / "deep" / f"run{i}"
        run.mkdir(parents=True)
        summary = {
            "status": status,
            "params": 1.2e6 * (i + 1),
            "params_nonembedding": 1e6 * (i + 1),
            "params_embedding": 2e5,
            "tokens": 1e8,
            "flops": 6e14 * (i + 1),
            "final_train_loss": 3.1,
            "final_val_loss": 3.0 - 0.1 * i,
            "wall_seconds": 1.0,
            "tokens_per_second": 1.0,
            "mfu": 0.1,
            "name": f"run{i}",
        }
        (run / "summary.json").write_text(json.dumps(summary))
    with pytest.warns(FitWarning, match="1 failed"):
        t = load_table(tmp_path / "sweep")
    np.testing.assert_array_equal(t.L, [3.0, 2.9])
    assert t.run_dirs[0].endswith("run0")


def test_frontier_keeps_runs_better_than_all_cheaper_ones():
    C = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    L = np.array([3.0, 3.2, 2.9, 2.95, 2.5])
    assert frontier_mask(C, L).tolist() == [True, False, True, False, True]
