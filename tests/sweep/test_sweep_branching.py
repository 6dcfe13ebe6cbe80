"""A branched sweep: each size's longest budget is a stable run and its shorter budgets are cooldown
branches of it; the plan counts the shared stable part once, and results.csv gives each branch its own
row with its whole schedule's tokens and FLOPs."""

from __future__ import annotations

import csv

import pytest

from scaling.cli import main
from scaling.errors import UserError
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from scaling.train.branch import branch_point
from tests.sweep.sweep_helpers import TINY_SWEEP, launcher, sweep_dict, write_sweep

TOKENS = [1.28e4, 2.56e4, 3.84e4]  # 50, 100 and 150 steps of 8 x 32 tokens


def _branched(**recipe) -> dict:
    return sweep_dict(
        recipe={
            **TINY_SWEEP["recipe"],
            "schedule": "wsd",
            "branching": True,
            "decay_shape": "1-sqrt",
            **recipe,
        },
        grid={"explicit": {"params": [3e3, 1.2e4], "tokens": TOKENS}},
    )


def test_plan_makes_one_stable_run_per_size_and_counts_its_steps_once(tmp_path, capsys):
    path = write_sweep(tmp_path / "b.yaml", _branched())
    runs = plan(load_sweep(path))
    stable = [r for r in runs if r.branch_of is None]
    assert [r.steps for r in stable] == [150, 150]
    by_name = {r.name: r for r in runs}
    for run in runs:
        assert run.config.optim.warmup_steps == 5  # the shortest run's 10%
        if run.branch_of is not None:
            parent = by_name[run.branch_of]
            assert parent.config.model == run.config.model and run.tokens in parent.config.train.branches
            assert (
                run.own_flops
                == (run.steps - branch_point(run.config)) * 256 * run.config.model.flops_per_token
            )
            assert branch_point(run.config) == run.steps - round(0.2 * run.steps)
    own, whole = sum(r.own_flops for r in runs), sum(r.flops for r in runs)
    assert main(["sweep", "plan", str(path), "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    assert (
        f"{own:.3g} trained in all" in table and f"{whole:.3g} without branching, {own / whole:.0%}" in table
    )
    assert table.count("branch of") == 4


def test_branching_needs_wsd(tmp_path):
    path = write_sweep(tmp_path / "b.yaml", _branched(schedule="cosine"))
    with pytest.raises(UserError, match=r"branching needs recipe\.schedule: wsd"):
        load_sweep(path)


def test_branched_sweep_writes_a_row_per_branch_with_its_whole_schedule(compile_cache, tmp_path):
    path = write_sweep(tmp_path / "b.yaml", _branched())
    out = tmp_path / "sweep"
    proc = launcher(path, out, compile_cache)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    with open(out / "results.csv", newline="") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    runs = plan(load_sweep(path))
    assert set(rows) == {r.name for r in runs}
    for run in runs:
        row = rows[run.name]
        assert row["status"] == "completed"
        assert int(row["tokens"]) == run.tokens and float(row["flops"]) == run.flops


def test_branches_of_a_failed_stable_run_are_skipped_not_waited_for(compile_cache, tmp_path):
    spec = _branched()
    spec["base"]["data"]["max_bytes"] = 2000  # too little text for a validation window: every run fails
    path = write_sweep(tmp_path / "b.yaml", spec)
    out = tmp_path / "sweep"
    proc = launcher(path, out, compile_cache)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output
    branches = [r for r in plan(load_sweep(path)) if r.branch_of is not None]
    for run in branches:
        assert f"skip {run.name}: failed (its stable run {run.branch_of} failed" in output, output
