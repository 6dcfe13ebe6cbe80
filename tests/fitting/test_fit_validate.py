"""Validation against known laws, identification of degenerate fits, and one-line errors for every law."""

import warnings

import numpy as np
import pandas as pd
import pytest
from fit_helpers import HOFFMANN, chinchilla_loss, isoflop_table, make_table

from scaling.cli import main
from scaling.errors import UserError
from scaling.fitting import FitOptions, fit_table
from scaling.fitting.result import LAWS
from scaling.fitting.table import FitWarning
from scaling.fitting.validate import validate

OPTIONS = FitOptions(n_boot=40, confidence=0.8, progress=False)


def _optimal_targets(p, budgets):
    """Runs at the true compute-optimal (N, D) of each budget (C = 6ND), loss exactly the law's."""
    a = p["beta"] / (p["alpha"] + p["beta"])
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    N = np.array([g * (c / 6) ** a for c in budgets])
    D = np.asarray(budgets) / (6 * N)
    return make_table(N, D, chinchilla_loss(p, N, D))


def test_validate_recovers_a_known_chinchilla_law_1000x_out():
    ladder = isoflop_table(budgets=(1e18, 3e18, 1e19, 3e19, 1e20), noise=0.0)
    targets = _optimal_targets(HOFFMANN, (1e21, 1e22, 1e23))
    (result,) = validate(ladder, targets, ("chinchilla",), OPTIONS)
    assert result.identified and not result.error
    assert [round(r.extrapolation) for r in result.rows] == [10, 100, 1000]
    assert max(r.are for r in result.rows) < 1e-6
    assert result.coverage == 1.0
    for row in result.rows:
        assert row.interval[0] <= row.actual <= row.interval[1]


def test_validate_recovers_a_known_compute_law():
    law = {"E": 1.5, "A": 2000.0, "alpha": 0.15}
    C = np.geomspace(1e15, 1e18, 12)
    ladder = make_table(np.sqrt(C / 6), np.sqrt(C / 6), law["E"] + law["A"] * C ** -law["alpha"])
    Ct = np.array([1e19, 1e20, 1e21])
    targets = make_table(np.sqrt(Ct / 6), np.sqrt(Ct / 6), law["E"] + law["A"] * Ct ** -law["alpha"])
    (result,) = validate(ladder, targets, ("compute",), OPTIONS)
    assert result.identified
    assert result.median_are < 1e-6


def test_noisy_ladder_intervals_include_run_scatter():
    """With 1% noise on the ladder, the prediction intervals are at least as wide as that scatter."""
    ladder = isoflop_table(budgets=(1e18, 1e19, 1e20), noise=0.01, seed=3)
    targets = _optimal_targets(HOFFMANN, (1e21,))
    (result,) = validate(ladder, targets, ("chinchilla",), OPTIONS)
    lo, hi = result.rows[0].interval
    assert np.log(hi / lo) > 2 * 1.28 * 0.01 * 0.8  # 80% interval of 1% log-normal noise, with slack


def _data_only_table():
    """Loss depending on tokens alone (20 D^-0.2): no N term, no irreducible loss to find."""
    N, D, C = [], [], []
    for c in np.geomspace(1e10, 1e11, 4):
        for n in np.geomspace(1e3, 2e4, 5):
            N.append(n)
            D.append(c / (6 * n))
            C.append(c)
    D = np.array(D)
    return make_table(N, D, 20 * D**-0.2, C=C, budget=np.array(C))


def test_unidentified_fit_is_flagged():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        fit = fit_table(_data_only_table(), "chinchilla", OPTIONS)
    assert any(str(w.message).startswith("unidentified fit") for w in caught)
    assert not fit.identified
    assert any("E =" in p or "exponent" in p for p in fit.diagnostics["unidentified"])
    assert "add compute budgets" in fit.diagnostics["advice"]
    with pytest.raises(UserError, match="not identified"):
        fit.require_identified()


def test_identified_fit_is_not_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        fit = fit_table(isoflop_table(), "chinchilla", OPTIONS)
    assert fit.identified and fit.diagnostics["unidentified"] == []


def _one_sided_isoflop_table(p=HOFFMANN, budgets=(1e18, 1e19, 1e20, 1e21), bracketed=2):
    """The first `bracketed` budgets sample sizes around their optimum, the rest only above it (2-12x)."""
    a = p["beta"] / (p["alpha"] + p["beta"])
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    N, C = [], []
    for i, c in enumerate(budgets):
        spread = (1 / 6, 6) if i < bracketed else (2, 12)
        N.extend(g * (c / 6) ** a * np.geomspace(*spread, 7))
        C.extend([c] * 7)
    N, C = np.array(N), np.array(C)
    D = C / (6 * N)
    return make_table(N, D, chinchilla_loss(p, N, D), budget=C)


def test_isoflop_fit_with_minima_outside_the_sampled_sizes_is_flagged():
    """Two located minima and two extrapolated ones: the sizing law is a guess and is flagged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        flagged = fit_table(_one_sided_isoflop_table(bracketed=2), "isoflop", OPTIONS)
        located = fit_table(_one_sided_isoflop_table(bracketed=3), "isoflop", OPTIONS)
    assert flagged.diagnostics["interior_budgets"] == 2
    assert not flagged.identified
    assert any("2 of 4 budgets have their minimum inside" in p for p in flagged.diagnostics["unidentified"])
    assert "sizes bracketing" in flagged.diagnostics["advice"]
    with pytest.raises(UserError, match="not identified"):
        flagged.require_identified()
    assert located.diagnostics["interior_budgets"] == 3
    assert not any("minimum inside" in p for p in located.diagnostics["unidentified"])


def _csv(table, path):
    pd.DataFrame(
        {
            "name": table.names,
            "status": "completed",
            "params": table.N,
            "params_nonembedding": table.N,
            "tokens": table.D,
            "flops": table.C,
            "loss": table.L,
            "budget": table.budget if table.budget is not None else table.C,
        }
    ).to_csv(path, index=False)
    return path


def test_predict_refuses_unidentified_fit_unless_forced(tmp_path, capsys):
    table = _csv(_data_only_table(), tmp_path / "t.csv")
    fit = tmp_path / "fit.json"
    assert main(["fit", str(table), "--out", str(fit), "--bootstrap", "20", "--no-progress"]) == 0
    assert "NOT IDENTIFIED" in capsys.readouterr().out
    assert main(["predict", str(fit), "--compute", "1e13"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this chinchilla fit is not identified")
    assert main(["predict", str(fit), "--compute", "1e13", "--force"]) == 0


def _unsupporting_tables():
    """Tables no law can fit well: two runs; one budget; one model size; losses that are all equal."""
    yield "two runs", make_table([1e3, 2e3], [1e6, 5e5], [2.0, 2.1])
    n = np.geomspace(1e3, 1e4, 6)
    yield "one budget", make_table(n, 1e9 / (6 * n), 2 + (np.log(n) - 8) ** 2 / 10, budget=np.full(6, 1e9))
    d = np.geomspace(1e5, 1e7, 6)
    yield "one size", make_table(np.full(6, 1e3), d, 2 + 30 / d**0.3)
    yield "flat", make_table(n, np.geomspace(1e5, 1e7, 6), np.full(6, 2.0))
    ladder = isoflop_table(budgets=(1e18, 1e19), sizes=3, noise=0.05, seed=1)
    yield "few noisy sizes", ladder


@pytest.mark.parametrize("law", LAWS)
def test_every_law_gives_one_line_errors_on_tables_it_cannot_fit(law, tmp_path, capsys):
    for what, table in _unsupporting_tables():
        path = _csv(table, tmp_path / f"{what}.csv")
        code = main(["fit", str(path), "--law", law, "--out", str(tmp_path / "f.json"), "--bootstrap", "20"])
        out = capsys.readouterr()
        errors = [line for line in out.err.splitlines() if line.startswith("error:")]
        assert code in (0, 2), (what, out.err)
        assert "Traceback" not in out.err
        if code:
            assert len(errors) == 1, (what, out.err)
