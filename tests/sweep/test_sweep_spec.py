"""Sweep files: strict loading, rejection before any run starts, and the plan's deterministic expansion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scaling.cli import main
from scaling.errors import UserError
from scaling.sweep.plan import format_count, format_sci, plan
from scaling.sweep.spec import load_sweep
from tests.sweep.sweep_helpers import TINY_SWEEP, sweep_dict, write_sweep


def _isoflop(budgets: list[dict]) -> dict:
    return {"isoflop": budgets}


BAD_SWEEPS = {
    "unknown key": (
        sweep_dict(
            recipe={**TINY_SWEEP["recipe"], "lr": {"peek": 1e-3, "reference_params": 1, "exponent": 0}}
        ),
        "recipe.lr: unknown key peek",
    ),
    "unknown key in base": (
        sweep_dict(base={**TINY_SWEEP["base"], "optim": {"learning_rate": 1e-3}}),
        "optim: unknown key learning_rate",
    ),
    "empty isoflop grid": (sweep_dict(grid=_isoflop([])), "grid: isoflop is an empty grid"),
    "empty explicit grid": (
        sweep_dict(grid={"explicit": {"params": [], "tokens": [1e5]}}),
        "grid.explicit: params is an empty grid",
    ),
    "budget too small": (
        sweep_dict(
            grid=_isoflop(
                [
                    {"flops": 1e10, "params": [3e3, 3e4], "points": 2},
                    {"flops": 1e8, "params": [3e3, 3e4], "points": 2},
                ]
            )
        ),
        "grid.isoflop[1] (flops 1e+08, params 3e+03): run c1e8_n3.31K",
    ),
    "mesh does not divide": (
        sweep_dict(
            base={**TINY_SWEEP["base"], "mesh": {"data": 1, "tensor": 3}},
            launch={**TINY_SWEEP["launch"], "devices_per_run": 3},
        ),
        "grid.explicit (params[0]=3e+03, tokens[0]=3.84e+04): run n3.31K_t38.4K (D16 L1 H1): tensor",
    ),
    "recipe setting in base": (
        sweep_dict(base={**TINY_SWEEP["base"], "train": {"steps": 10}}),
        "base.train.steps is set by the recipe",
    ),
    "recipe choice left to a default": (
        sweep_dict(recipe={k: v for k, v in TINY_SWEEP["recipe"].items() if k != "warmup_fraction"}),
        "warmup_fraction",
    ),
    "two lr references": (
        sweep_dict(
            recipe={
                **TINY_SWEEP["recipe"],
                "lr": {"peak": 1e-3, "reference_params": 1e4, "reference_width": 32, "exponent": 1},
            }
        ),
        "lr needs exactly one of reference_params and reference_width",
    ),
    "weight decay set twice": (
        sweep_dict(
            base={**TINY_SWEEP["base"], "optim": {"weight_decay": 0.1}},
            recipe={**TINY_SWEEP["recipe"], "weight_decay": {"timescale": 0.3}},
        ),
        "base.optim.weight_decay is set by recipe.weight_decay; remove one of the two",
    ),
    "weight decay timescale with branching": (
        sweep_dict(
            recipe={
                **TINY_SWEEP["recipe"],
                "schedule": "wsd",
                "branching": True,
                "weight_decay": {"timescale": 0.3},
            }
        ),
        "recipe.weight_decay (a rate set by each run's length) cannot be used with branching",
    ),
    "short-run batch above the batch": (
        sweep_dict(recipe={**TINY_SWEEP["recipe"], "short_run_batch": {"steps": 100, "min_batch_size": 16}}),
        "recipe.short_run_batch.min_batch_size=16 must divide recipe.batch_size=8",
    ),
    "short-run batch with branching": (
        sweep_dict(
            recipe={
                **TINY_SWEEP["recipe"],
                "schedule": "wsd",
                "branching": True,
                "short_run_batch": {"steps": 100, "min_batch_size": 2},
            }
        ),
        "recipe.short_run_batch (a batch set by each run's length) cannot be used with branching",
    ),
    "shape rule left to defaults": (
        sweep_dict(recipe={**TINY_SWEEP["recipe"], "shape": {"aspect_ratio": 16}}),
        "recipe.shape: state every field, missing head_dim",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SWEEPS))
def test_bad_sweep_rejected_before_any_run(case, tmp_path, capsys):
    spec, message = BAD_SWEEPS[case]
    path = write_sweep(tmp_path / "bad.yaml", spec)
    out = tmp_path / "sweep"
    assert main(["sweep", "run", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not out.exists()


def test_isoflop_tokens_follow_exact_flops_per_token(tmp_path):
    budgets = [
        {"flops": 2e10, "params": [3e3, 3e4], "points": 3},
        {"flops": 2e11, "params": [1e4, 1e5], "points": 2},
    ]
    runs = plan(load_sweep(write_sweep(tmp_path / "s.yaml", sweep_dict(grid=_isoflop(budgets)))))
    assert [r.name for r in runs] == [
        "c2e10_n3.31K",
        "c2e10_n12.8K",
        "c2e10_n25.5K",
        "c2e11_n12.8K",
        "c2e11_n100K",
    ]
    for run in runs:
        tokens_per_step = 8 * 32
        exact = run.budget / run.config.model.flops_per_token / tokens_per_step
        assert run.steps == round(exact)
        assert run.flops == run.steps * tokens_per_step * run.config.model.flops_per_token
        assert abs(run.flops / run.budget - 1) < 0.5 / run.steps + 1e-9


def test_recipe_sets_every_opinionated_field(tmp_path):
    runs = plan(load_sweep(write_sweep(tmp_path / "s.yaml", TINY_SWEEP)))
    assert [r.name for r in runs] == ["n3.31K_t38.4K", "n12.8K_t38.4K", "n25.5K_t38.4K"]
    for run in runs:
        cfg = run.config
        assert cfg.name == run.name
        assert cfg.train.steps == 150 and cfg.train.batch_size == 8
        assert cfg.optim.schedule == "cosine" and cfg.optim.warmup_steps == 15
        assert cfg.optim.lr == pytest.approx(3e-3 * (cfg.model.params_nonembedding / 1e4) ** -0.3)
        assert cfg.model.D == 16 * cfg.model.H and cfg.model.F == 4 * cfg.model.D
        assert cfg.train.checkpoint_every == 20  # from the base config
    assert plan(load_sweep(tmp_path / "s.yaml")) == runs


def test_width_lr_rule_gives_each_run_peak_times_reference_over_width(tmp_path):
    recipe = {**TINY_SWEEP["recipe"], "lr": {"peak": 8e-3, "reference_width": 32, "exponent": 1.0}}
    runs = plan(load_sweep(write_sweep(tmp_path / "s.yaml", sweep_dict(recipe=recipe))))
    assert len({r.config.model.D for r in runs}) == 2  # two sizes share a width: their lr is the same
    for run in runs:
        assert run.config.optim.lr == pytest.approx(8e-3 * 32 / run.config.model.D, rel=1e-12)


def test_weight_decay_timescale_holds_each_runs_averaging_window_at_that_fraction(tmp_path):
    recipe = {**TINY_SWEEP["recipe"], "weight_decay": {"timescale": 0.25}}
    grid = {"explicit": {"params": [3e3, 1.2e4], "tokens": [3.84e4, 1.5e5]}}
    runs = plan(load_sweep(write_sweep(tmp_path / "s.yaml", sweep_dict(recipe=recipe, grid=grid))))
    assert len({r.config.train.steps for r in runs}) == 2
    for run in runs:
        optim, steps = run.config.optim, run.config.train.steps
        assert 1.0 / (optim.lr * optim.weight_decay) == pytest.approx(0.25 * steps, rel=1e-12)


def test_short_runs_get_the_largest_batch_that_still_gives_them_the_steps(tmp_path):
    recipe = {**TINY_SWEEP["recipe"], "short_run_batch": {"steps": 500, "min_batch_size": 2}}
    tokens = [1.6e4, 3.84e4, 9.6e4, 5.12e5]  # 500 steps of 32 tokens: 1, 2.4, 6 and 32 sequences a step
    grid = {"explicit": {"params": [3e3], "tokens": tokens}}
    runs = plan(load_sweep(write_sweep(tmp_path / "s.yaml", sweep_dict(recipe=recipe, grid=grid))))
    assert [r.config.train.batch_size for r in runs] == [2, 2, 4, 8]  # divisors of 8 from 2; 6 -> 4
    assert [r.config.train.steps for r in runs] == [250, 600, 750, 2000]
    # a smaller batch evaluates in more batches: the same validation windows as the recipe's batch
    assert [r.config.train.eval_batches for r in runs] == [8, 8, 4, 2]
    recipe["micro_batches"] = 4
    recipe["short_run_batch"]["min_batch_size"] = 4
    runs = plan(load_sweep(write_sweep(tmp_path / "s.yaml", sweep_dict(recipe=recipe, grid=grid))))
    assert [r.config.train.batch_size for r in runs] == [4, 4, 4, 8]


def test_two_points_with_one_shape_are_rejected(tmp_path):
    spec = sweep_dict(grid={"explicit": {"params": [3e3, 3.1e3], "tokens": [3.84e4]}})
    with pytest.raises(UserError, match=re.escape("two grid points give the same run n3.31K_t38.4K")):
        plan(load_sweep(write_sweep(tmp_path / "s.yaml", spec)))


def test_name_formats():
    assert format_sci(1e13) == "1e13" and format_sci(3.5e12) == "3.5e12" and format_sci(9.9999e11) == "1e12"
    assert format_count(52_400) == "52.4K" and format_count(1.2e6) == "1.2M" and format_count(999) == "999"


EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
SHIPPED_SWEEPS = sorted(p.name for p in EXPERIMENTS.glob("*.yaml") if "\ngrid:" in p.read_text())


@pytest.mark.parametrize("name", SHIPPED_SWEEPS)
def test_every_shipped_sweep_file_loads_and_plans(name):
    runs = plan(load_sweep(EXPERIMENTS / name))
    assert runs and len({r.name for r in runs}) == len(runs)
    assert all(r.config.optim.lr > 0 and r.steps > 0 for r in runs)
