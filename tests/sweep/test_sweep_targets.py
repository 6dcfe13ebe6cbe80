"""Targets: sized from the ladder's fit, stored once, trained after the ladder, resumed after a kill."""

from __future__ import annotations

import dataclasses
import json
import random
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from scaling.cli import main
from scaling.data import load_dataset
from scaling.errors import UserError
from scaling.sweep import targets
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import base_model, plan
from scaling.sweep.spec import load_sweep
from scaling.sweep.workflow import Sweep
from scaling.train.run_config import load_run_config
from tests.sweep.sweep_helpers import TINY_SWEEP, launcher, sweep_dict, write_sweep

LAW = {"E": 1.5, "A": 60.0, "B": 300.0, "alpha": 0.5, "beta": 0.4}
GRID = {
    "isoflop": [{"flops": c, "params": [1e3, 3e4], "points": 7} for c in (1.25e10, 2.5e10, 5e10, 1e11, 2e11)]
}


def _law(N, D):
    return LAW["E"] + LAW["A"] / np.power(N, LAW["alpha"]) + LAW["B"] / np.power(D, LAW["beta"])


def _sized_sweep(tmp_path, law: str):
    recipe = {
        **TINY_SWEEP["recipe"],
        "shape": {"aspect_ratio": 32, "head_dim": 4, "mlp_ratio": 4, "max_layers": 8},
    }
    spec_dict = sweep_dict(
        recipe=recipe, grid=GRID, targets={"law": law, "runs": [{"flops": 1e12}, {"flops": 1e13}]}
    )
    spec = load_sweep(write_sweep(tmp_path / f"{law}.yaml", spec_dict))
    ladder = plan(spec)
    N = np.array([r.params_nonembedding for r in ladder], np.float64)
    D = np.array([r.tokens for r in ladder], np.float64)
    table = pd.DataFrame(
        {
            "name": [r.name for r in ladder],
            "status": "completed",
            "params": [r.config.model.params for r in ladder],
            "params_nonembedding": N,
            "tokens": D,
            "flops": [r.flops for r in ladder],
            "loss": _law(N, D),
            "budget": [r.budget for r in ladder],
        }
    )
    path = tmp_path / f"{law}_results.csv"
    table.to_csv(path, index=False)
    return spec, ladder, path


def test_plan_before_the_ladder_says_how_each_target_will_be_chosen(tmp_path, capsys):
    runs = [{"flops": 1e12}, {"params": 3e4, "tokens": 2e6}]
    recipe = {
        **TINY_SWEEP["recipe"],
        "shape": {"aspect_ratio": 32, "head_dim": 4, "mlp_ratio": 4, "max_layers": 8},
    }
    spec = sweep_dict(recipe=recipe, grid=GRID, targets={"law": "isoflop", "runs": runs})
    path = write_sweep(tmp_path / "s.yaml", spec)
    assert main(["sweep", "plan", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "target (C 1e+12): sized by the isoflop fit once the ladder is done, ~" in out
    assert "target (N 3e+04, D 2e+06): as given, after the ladder" in out


def test_chinchilla_targets_minimise_the_law_over_the_recipes_real_models(tmp_path):
    spec, ladder, table = _sized_sweep(tmp_path, "chinchilla")
    fit, choices = targets.choose(spec, ladder, table)
    assert fit.identified
    assert fit.params["alpha"] == pytest.approx(LAW["alpha"], rel=1e-3)
    base = base_model(spec)
    for target, choice in zip(spec.targets.runs, choices, strict=True):
        # Independent brute force: every shape the recipe makes, loss of the *true* law at D = C / FLOPs.
        models = {}
        for n in np.geomspace(1e2, 1e8, 600):
            m = spec.recipe.shape.shape_for(float(n), base)
            models[(m.D, m.L)] = m
        best = min(
            models.values(), key=lambda m: _law(m.params_nonembedding, target.flops / m.flops_per_token)
        )
        assert choice.params == best.params_nonembedding
    runs = targets.target_runs(spec, choices)
    assert [r.params_nonembedding for r in runs] == [c.params for c in choices]
    assert [r.name for r in runs] == [f"target_c1e12_n{runs[0].name.split('_n')[1]}", runs[1].name]
    for run, target in zip(runs, spec.targets.runs, strict=True):
        assert run.flops == pytest.approx(target.flops, rel=0.01)


def test_isoflop_targets_match_scaling_predict(tmp_path, capsys):
    spec, ladder, table = _sized_sweep(tmp_path, "isoflop")
    fit, choices = targets.choose(spec, ladder, table)
    fit_path = fit.save(tmp_path / "fit.json")
    base = base_model(spec)
    for target, choice in zip(spec.targets.runs, choices, strict=True):
        capsys.readouterr()
        assert main(["predict", str(fit_path), "--compute", str(target.flops), "--json"]) == 0
        predicted = json.loads(capsys.readouterr().out)["params"]
        chosen = spec.recipe.shape.shape_for(choice.params, base).params_nonembedding
        # The recipe's discrete shapes: the chosen one is the nearest (in log) to the predicted size.
        for n in np.geomspace(predicted / 3, predicted * 3, 60):
            other = spec.recipe.shape.shape_for(float(n), base).params_nonembedding
            assert abs(np.log(chosen / predicted)) <= abs(np.log(other / predicted)) + 1e-12


@pytest.mark.filterwarnings("ignore::scaling.fitting.table.FitWarning")
def test_targets_refuse_an_unidentified_fit(tmp_path):
    spec, ladder, table = _sized_sweep(tmp_path, "chinchilla")
    frame = pd.read_csv(table)
    frame["loss"] = 20 * frame["tokens"] ** -0.2  # data term only: nothing identifies E or alpha
    frame.to_csv(table, index=False)
    with pytest.raises(UserError, match="not identified"):
        targets.choose(spec, ladder, table)


def test_stored_choice_is_reused_and_checked_against_the_sweep_file(tmp_path):
    spec, ladder, table = _sized_sweep(tmp_path, "chinchilla")
    sweep = Sweep(spec, ladder, Ledger(tmp_path / "sweep"))
    assert sweep.target_runs() == ()
    first = targets.load_or_choose(spec, sweep.ledger, ladder, table)
    assert targets.fit_path(sweep.ledger).exists()
    table.write_text("not a table")  # a stored choice never refits
    assert targets.load_or_choose(spec, sweep.ledger, ladder, table) == first
    assert [r.name for r in sweep.runs()][-2:] == [r.name for r in targets.target_runs(spec, first)]
    changed = yaml.safe_load((tmp_path / "chinchilla.yaml").read_text())
    changed["targets"]["law"] = "isoflop"
    other = load_sweep(write_sweep(tmp_path / "o.yaml", changed))
    with pytest.raises(UserError, match="delete"):
        targets.read_choices(other, targets.plan_path(sweep.ledger))


TARGET_SWEEP = sweep_dict(
    targets={"law": "chinchilla", "runs": [{"params": 1.2e4, "tokens": 7.68e4}]},
    base={**TINY_SWEEP["base"], "train": {**TINY_SWEEP["base"]["train"], "checkpoint_every": 10}},
)


@pytest.mark.slow
def test_kill_during_targets_then_relaunch_equals_the_target_trained_alone(compile_cache, tmp_path):
    sweep = write_sweep(tmp_path / "t.yaml", TARGET_SWEEP)
    out = tmp_path / "sweep"
    proc = launcher(sweep, out, compile_cache)
    deadline = time.monotonic() + 300
    target_dir = None
    while target_dir is None or not (target_dir / "metrics.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        names = [p for p in out.glob("target_*") if p.is_dir()] if out.exists() else []
        target_dir = names[0] if names else None
        time.sleep(0.05)
    time.sleep(random.Random(7).uniform(0.2, 1.5))
    proc.kill()
    proc.wait()
    final = launcher(sweep, out, compile_cache)
    output, _ = final.communicate(timeout=600)
    assert final.returncode == 0, output
    ledger = Ledger(out)
    completed = [e["run"] for e in ledger.events() if e["event"] == "completed"]
    assert sorted(completed) == sorted({*completed}), "a run completed twice"
    assert target_dir.name in completed
    alone = tmp_path / "alone"
    assert (
        main(["train", str(ledger.config_path(target_dir.name)), "--out", str(alone), "--no-progress"]) == 0
    )
    resumed = json.loads((target_dir / "summary.json").read_text())
    trained_alone = json.loads((alone / "summary.json").read_text())
    assert resumed["final_val_loss"] == trained_alone["final_val_loss"]
    corpus = load_dataset(load_run_config(ledger.config_path(target_dir.name)).data).train.size
    assert resumed["epochs"] == pytest.approx(resumed["tokens"] / corpus)
    rows = pd.read_csv(out / "results.csv")
    assert dict(zip(rows["name"], rows["role"], strict=True))[target_dir.name] == "target"
    _check_validate(sweep, out, resumed["final_val_loss"])


@pytest.mark.slow
def test_targets_train_smallest_first(compile_cache, tmp_path):
    """The ladder starts its largest runs first; targets go the other way, so the cheap checks of the fit
    report before the costly one starts (the file lists the large target first)."""
    spec = sweep_dict(
        grid={"explicit": {"params": [3e3], "tokens": [1.28e4]}},
        targets={
            "law": "chinchilla",
            "runs": [{"params": 1.2e4, "tokens": 2.56e4}, {"params": 3e3, "tokens": 5.12e3}],
        },
    )
    sweep = write_sweep(tmp_path / "t.yaml", spec)
    out = tmp_path / "sweep"
    output, _ = launcher(sweep, out, compile_cache, "--workers", "1").communicate(timeout=600)
    started = [e["run"] for e in Ledger(out).events() if e["event"] == "started"]
    targets_started = [name for name in started if name.startswith("target_")]
    assert len(targets_started) == 2, output
    loaded = load_sweep(sweep)
    flops = {r.name: r.flops for r in Sweep(loaded, plan(loaded), Ledger(out)).target_runs()}
    assert flops[targets_started[0]] < flops[targets_started[1]]


def _check_validate(sweep, out, actual: float) -> None:
    """`scaling sweep validate --json` on the finished sweep: every law reported, the files written; with 3
    ladder runs, Chinchilla's 5 parameters cannot be fitted and say so in one line."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["sweep", "validate", str(sweep), "--out", str(out), "--json", "--bootstrap", "20"])
    assert code == 0
    summary = json.loads(buffer.getvalue())
    assert summary["law"] == "chinchilla" and summary["targets"] == []
    assert set(summary["laws"]) == {"chinchilla", "compute", "isoflop", "kaplan"}
    assert "cannot determine 5 free parameters" in summary["laws"]["chinchilla"]["error"]
    compute = summary["laws"]["compute"]
    if not compute["error"]:
        (row,) = compute["targets"]
        assert row["actual"] == actual
        assert row["are"] == pytest.approx(abs(row["predicted"] - actual) / actual)
        assert set(row) >= {"law", "compute", "extrapolation", "predicted", "interval", "actual", "are"}
        assert row["epochs"] == json.loads((out / row["target"] / "summary.json").read_text())["epochs"]
    for name in ("validation.csv", "validation.json", "validation.png"):
        assert (out / name).exists()


def test_targets_that_repeat_their_corpus_are_named_at_sizing_and_at_validation(tmp_path):
    """A ladder run's recorded epochs give the corpus size; a target past one epoch is warned about when
    sized and noted by validate, but only while no ladder run repeated its data."""
    from scaling.fitting.validate import LawValidation
    from scaling.records import RunSummary
    from scaling.sweep.validation import SweepValidation, repeated_data_notes

    _, ladder, _ = _sized_sweep(tmp_path, "isoflop")
    ledger = Ledger(tmp_path / "sweep")
    first = ladder[0]
    corpus = first.tokens * 4  # the ladder run made a quarter of an epoch
    fields = {f: 0 for f in RunSummary.__dataclass_fields__}
    summary = RunSummary(**{**fields, "name": first.name, "status": "completed", "tokens": first.tokens})
    summary = dataclasses.replace(summary, epochs=first.tokens / corpus, peak_flops_source="", encoding="")
    run_dir = ledger.run_dir(first.name)
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(summary.to_json())
    small, large = (dataclasses.replace(r, name=f"target_{i}") for i, r in enumerate((ladder[0], ladder[-1])))
    large = dataclasses.replace(
        large,
        config=dataclasses.replace(
            large.config,
            train=dataclasses.replace(
                large.config.train, steps=int(3 * corpus / large.config.tokens_per_step)
            ),
        ),
    )
    (warning,) = targets.repeated_data(ladder, (small, large), ledger)
    assert warning.startswith(f"warning: target_1 will train {large.tokens / corpus:.2f} epochs")
    (run_dir / "summary.json").write_text(dataclasses.replace(summary, epochs=1.5).to_json())
    assert targets.repeated_data(ladder, (small, large), ledger) == []  # the ladder repeated its data too

    laws = (LawValidation("compute", (), 0.8),)
    result = SweepValidation("compute", laws, {"target_0": 0.5, "target_1": 3.45}, ladder_epochs=0.25)
    (note,) = repeated_data_notes(result)
    assert note.startswith("note: target_1 trained 3.45 epochs of its corpus (ladder runs at most 0.25)")
    assert repeated_data_notes(dataclasses.replace(result, ladder_epochs=2.0)) == []
