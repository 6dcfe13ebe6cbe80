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


def _exit_code(argv) -> int:
    """`scaling ARGV`'s exit status, whether returned or raised (argparse exits on a bad choice)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def _one_error(capsys) -> str:
    """The command's stderr, asserted to be exactly one `error:` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _drop(key):
    def edit(fit):
        del fit["params"][key]

    return edit


def _set(key, value):
    def edit(fit):
        fit["params"][key] = value

    return edit


@pytest.mark.parametrize(
    "edit, expected",
    [
        (_drop("E"), ("parameter 'E' is missing", "scaling fit")),
        (_set("alpha", "0.34"), ("parameter 'alpha' is text, not a number",)),
        (_set("alpha", -0.3), ("parameter 'alpha' is -0.3, it must be positive",)),
        (_set("E", float("nan")), ("parameter 'E' is nan, it must be >= 0",)),
        (lambda fit: fit.pop("law"), ("field 'law' is missing",)),
        (lambda fit: fit.update(law="gpt5"), ("field 'law' is 'gpt5', not one of chinchilla",)),
        (lambda fit: fit["samples"]["E"].__setitem__(0, "x"), ("samples['E'] is not a list of numbers",)),
    ],
)
def test_broken_fit_json_is_one_line_naming_file_and_field(edit, expected, fit_json, tmp_path, capsys):
    fit = json.loads(fit_json.read_text())
    edit(fit)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(fit))
    assert main(["predict", str(broken), "--compute", "1e21"]) == 2
    line = _one_error(capsys)
    assert str(broken) in line and all(e in line for e in expected), line


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"law": "chinchilla", ', "is not JSON"),
        ("[1, 2]", "holds a JSON list, not a FIT.json object"),
        ("\xff\xfe", "is not JSON"),
    ],
)
def test_fit_file_that_is_not_a_fit_object_is_one_line(text, expected, tmp_path, capsys):
    path = tmp_path / "fit.json"
    path.write_bytes(text.encode("latin-1"))
    assert main(["predict", str(path), "--compute", "1e21"]) == 2
    line = _one_error(capsys)
    assert str(path) in line and expected in line
    assert main(["predict", str(tmp_path), "--compute", "1e21"]) == 2
    assert "is a directory" in _one_error(capsys)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["predict", "{fit}", "--params", "-1e9", "--tokens", "1e10"], "--params"),
        (["predict", "{fit}", "--params", "1e9", "--tokens", "-2.5E+10"], "--tokens"),
        (["predict", "{fit}", "--compute", "-1e20"], "--compute"),
        (["predict", "{fit}", "--compute", "-inf"], "--compute"),
        (["predict", "{fit}", "--compute", "nan"], "--compute"),
        (["backtest", "{csv}", "--fit-max", "-1e20"], "--fit-max"),
        (["backtest", "{csv}", "--fit-max", "1e20", "--test-min", "-3e21"], "--test-min"),
        (["fit", "{csv}", "--out", "{dir}/x.json", "--bootstrap", "-5"], "--bootstrap"),
        (["fit", "{csv}", "--out", "{dir}/x.json", "--bootstrap", "2.5"], "--bootstrap"),
        (["fit", "{csv}", "--out", "{dir}/x.json", "--confidence", "-0.5"], "--confidence"),
        (["fit", "{csv}", "--out", "{dir}/x.json", "--seed", "-1"], "--seed"),
        (["fit", "{csv}", "--out", "{dir}/x.json", "--smooth", "0"], "--smooth"),
        (["fit", "{csv}", "--out", "{dir}/x.json", "--budget-tolerance", "-1e-3"], "--budget-tolerance"),
        (["plot", "{fit}", "--out", "{dir}", "--target-compute", "-1e23"], "--target-compute"),
    ],
)
def test_negative_looking_numbers_parse_then_fail_with_what_they_must_be(
    args, flag, fit_json, table_csv, tmp_path, capsys
):
    paths = {"fit": fit_json, "csv": table_csv, "dir": tmp_path}
    argv = [a.format(**paths) for a in args]
    assert main(argv) == 2
    line = _one_error(capsys)
    value = argv[argv.index(flag) + 1]
    assert line.startswith(f"error: {flag} must be ") and line.endswith(f", not {value}"), line
    assert not (tmp_path / "x.json").exists() and not list(tmp_path.glob("*.png"))


def test_backtest_refuses_to_test_on_the_runs_it_fits(table_csv, capsys):
    argv = ["backtest", str(table_csv), "--law", "isoflop", "--fit-max", "1e20", "--test-min", "1e19"]
    assert main(argv) == 2
    assert "--test-min 1e+19 is below --fit-max 1e+20" in _one_error(capsys)


def test_numbers_in_range_still_parse(fit_json, capsys):
    assert main(["predict", str(fit_json), "--params", "1e9", "--tokens", "2E10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 1e9 and out["tokens"] == 2e10


def test_predict_says_in_the_terminal_how_far_above_or_below(fit_json, table_csv, capsys):
    flops = pd.read_csv(table_csv)["flops"]
    low, high = flops.min(), flops.max()
    capsys.readouterr()
    assert main(["predict", str(fit_json), "--compute", str(10 * high)]) == 0
    assert "extrapolation: 10x the largest fitted run's compute" in capsys.readouterr().out
    assert main(["predict", str(fit_json), "--compute", str(low / 20)]) == 0
    assert "extrapolation: 20x below the smallest fitted run's compute" in capsys.readouterr().out
    k = json.loads(fit_json.read_text())["conventions"]["flops_per_param_token"]
    n = 1e9
    assert (
        main(["predict", str(fit_json), "--params", str(n), "--tokens", str(30 * high / (k * n)), "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["extrapolation"] == pytest.approx(30.0) and out["fitted_compute"] == [low, high]


@pytest.mark.parametrize(
    "table, extra, expected",
    [
        ("empty.csv", [], "no runs left to fit"),
        ("noloss.csv", [], "no loss column 'loss'"),
        ("nanloss.csv", [], "rows have invalid values (loss is NaN/inf/missing in 36"),
        ("rundirs", [], "holds no run directories"),
        ("missing.csv", [], "does not exist"),
        ("good.csv", ["--law", "nope"], "invalid choice: 'nope'"),
        ("good.csv", ["--out", "{dir}"], "is a directory"),
        ("good.csv", ["--points", "best"], "invalid choice: 'best'"),
        ("good.csv", ["--status", "finished"], "no runs have status finished (the table has 36 completed)"),
    ],
)
def test_bad_fit_input_is_one_line_and_leaves_the_out_file(
    table, extra, expected, table_csv, tmp_path, capsys
):
    frame = pd.read_csv(table_csv)
    frame.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    frame.drop(columns="loss").to_csv(tmp_path / "noloss.csv", index=False)
    frame.assign(loss=np.nan).to_csv(tmp_path / "nanloss.csv", index=False)
    frame.to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "rundirs").mkdir()
    out = tmp_path / "fit.json"
    out.write_text("previous fit")
    law = ["--law", "compute"] if "--points" in extra else []
    args = ["fit", str(tmp_path / table), "--out", str(out), "--bootstrap", "4", "--no-progress", *law]
    assert _exit_code(args + [e.format(dir=tmp_path) for e in extra]) == 2
    assert expected in _one_error(capsys)
    assert out.read_text() == "previous fit" and not list(tmp_path.glob(".*.tmp"))


def test_isoflop_fit_without_a_loss_law_loads_and_says_why_no_loss(tmp_path, capsys):
    from fit_helpers import isoflop_table

    from scaling.fitting.fit import FitOptions, fit_table

    with pytest.warns(UserWarning):
        fit = fit_table(isoflop_table(budgets=(1e18, 1e19)), "isoflop", FitOptions(n_boot=20, progress=False))
    assert np.isnan(fit.params["E"]) and np.isfinite(fit.params["a"])
    path = fit.save(tmp_path / "fit.json")
    assert main(["predict", str(path), "--compute", "1e19", "--force"]) == 0  # 2 budgets: unidentified
    out = capsys.readouterr().out
    assert "no L_opt(C) law" in out and "parameters N = " in out
