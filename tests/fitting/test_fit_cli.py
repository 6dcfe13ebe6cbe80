"""`scaling fit / predict / backtest / plot` end to end, in process, and their one-line errors."""

import json

import numpy as np
import pandas as pd
import pytest
from fit_helpers import isoflop_table

from scaling.cli import main


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    t = isoflop_table()
    path = tmp_path_factory.mktemp("cli") / "results.csv"
    pd.DataFrame(
        {
            "name": t.names,
            "status": "completed",
            "params": t.N * 1.1,
            "params_nonembedding": t.N,
            "tokens": t.D,
            "flops": t.C,
            "loss": t.L,
            "budget": t.budget,
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fit_json(table_csv):
    out = table_csv.parent / "fit.json"
    assert main(["fit", str(table_csv), "--out", str(out), "--bootstrap", "40", "--no-progress"]) == 0
    return out


def test_fit_json_records_what_was_fitted(fit_json, table_csv):
    fit = json.loads(fit_json.read_text())
    assert fit["law"] == "chinchilla"
    assert set(fit["params"]) >= {"E", "A", "B", "alpha", "beta"}
    assert set(fit["intervals"]) >= {"E", "A", "B", "alpha", "beta"}
    assert fit["conventions"]["params"] == "nonembedding" and fit["conventions"]["flops"] == "exact"
    assert fit["n_runs"] == 36 and isinstance(fit["objective"], float)
    assert fit["diagnostics"]["best_reached_only_from_boundary"] is False
    import hashlib

    assert fit["table"]["sha256"] == hashlib.sha256(table_csv.read_bytes()).hexdigest()


def test_predict_json(fit_json, capsys):
    assert main(["predict", str(fit_json), "--params", "1e9", "--tokens", "2e10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lo, hi = out["interval"]
    assert lo <= out["loss"] <= hi
    assert main(["predict", str(fit_json), "--compute", "1e22", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"loss", "interval", "params", "tokens"} <= set(out)
    fit = json.loads(fit_json.read_text())
    k = fit["conventions"]["flops_per_param_token"]
    assert out["params"] * out["tokens"] * k == pytest.approx(1e22, rel=1e-9)


def test_backtest_json(table_csv, capsys):
    args = [
        "backtest",
        str(table_csv),
        "--law",
        "isoflop",
        "--fit-max",
        "1e20",
        "--test-min",
        "1e21",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    errors = [r["are"] for r in out["runs"]]
    assert out["median_are"] == pytest.approx(np.median(errors)) and out["max_are"] == max(errors)
    assert all(r["extrapolation"] == pytest.approx(10.0, rel=0.01) for r in out["runs"])
    assert out["max_are"] < 0.05


def test_plot_writes_png_and_svg(fit_json, tmp_path):
    assert main(["plot", str(fit_json), "--out", str(tmp_path), "--target-compute", "1e23"]) == 0
    for stem in ("loss_vs_compute", "isoflop", "allocation", "residuals"):
        for ext in ("png", "svg"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "{fit}"], "give --params N and --tokens D, or --compute C"),
        (["predict", "{fit}", "--compute", "1e20", "--params", "1e9"], "not both"),
        (["predict", "{dir}/missing.json", "--compute", "1e20"], "does not exist"),
        (["fit", "{bad}", "--out", "{dir}/x.json"], "invalid values"),
        (
            [
                "fit",
                "{csv}",
                "--law",
                "isoflop",
                "--budget-col",
                "none",
                "--budget-tolerance",
                "1e9",
                "--out",
                "{dir}/x.json",
            ],
            "at least 2 compute budgets",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, fit_json, table_csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(table_csv)
    frame.loc[0, "loss"] = np.nan
    frame.to_csv(bad, index=False)
    paths = {"fit": fit_json, "dir": tmp_path, "bad": bad, "csv": table_csv}
    assert main([a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_predict_says_how_far_out_and_refuses_far_below(fit_json, table_csv, capsys):
    flops = pd.read_csv(table_csv)["flops"]
    capsys.readouterr()
    assert main(["predict", str(fit_json), "--compute", str(10 * flops.max()), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["extrapolation"] == pytest.approx(10.0)
    assert main(["predict", str(fit_json), "--compute", str(flops.min() / 1000)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1e+03x below the smallest fitted run" in err[0]
    assert main(["predict", str(fit_json), "--compute", str(flops.min() / 1000), "--force"]) == 0
