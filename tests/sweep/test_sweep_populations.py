"""Sweeps trained as populations (`launch.population`): same results as every run alone, a stopped
population resumes, the plan shows the grouping, the grouping itself (a pure function), and one SLURM
array task per population."""

from __future__ import annotations

import collections
import json
import signal
import time

import pytest

from scaling.cli import main
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.populations import populations
from scaling.sweep.slurm import submit
from scaling.sweep.spec import load_sweep
from scaling.sweep.status import run_state
from tests.sweep.sweep_helpers import launcher, sweep_dict, write_sweep

# Two shapes x two lengths (300 and 100 steps): two populations of two runs each.
GRID = {"explicit": {"params": [3e3, 1.2e4], "tokens": [7.68e4, 2.56e4]}}


def _spec(population: int) -> dict:
    spec = sweep_dict(grid=GRID)
    spec["launch"] = {**spec["launch"], "population": population}
    return spec


def _curve(run_dir) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("train_loss"), r.get("grad_norm"), r.get("val_loss")) for r in rows]


def _rows(run_dir) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _sweep(tmp_path, compile_cache, population: int):
    sweep = write_sweep(tmp_path / f"pop{population}.yaml", _spec(population))
    out = tmp_path / f"sweep{population}"
    proc = launcher(sweep, out, compile_cache)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    return sweep, out, output


@pytest.fixture(scope="module")
def alone(tmp_path_factory, compile_cache):
    """The sweep with every run in its own `scaling train` process."""
    return _sweep(tmp_path_factory.mktemp("alone"), compile_cache, 1)


def test_populations_give_the_results_of_every_run_trained_alone(alone, compile_cache, tmp_path):
    sweep, out, output = _sweep(tmp_path, compile_cache, 8)
    assert (out / "results.csv").read_bytes() == (alone[1] / "results.csv").read_bytes()
    runs = plan(load_sweep(sweep))
    for run in runs:
        assert _curve(out / run.name) == _curve(alone[1] / run.name)  # every logged step, bitwise
        assert f"completed {run.name}: loss" in output
    started = [e for e in Ledger(out).events() if e["event"] == "started"]
    assert len(started) == len(runs) and len({e["child"] for e in started}) == 2  # one process per shape
    by_shape = collections.defaultdict(set)
    for run in runs:
        by_shape[run.shape].add(run.name)
    assert sorted(sorted(e["population"]) for e in started) == sorted(
        sorted(names) for names in by_shape.values() for _ in names
    )


def test_launcher_stopped_mid_population_resumes_to_the_same_results(alone, compile_cache, tmp_path):
    sweep = write_sweep(tmp_path / "pop.yaml", _spec(8))
    out = tmp_path / "sweep"
    runs = plan(load_sweep(sweep))
    proc = launcher(sweep, out, compile_cache)
    deadline = time.monotonic() + 300
    while not any(_rows(out / run.name) for run in runs):  # stop it once a member has trained
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    interrupted = {e["run"] for e in Ledger(out).events() if e["event"] == "interrupted"}
    assert interrupted and any(_rows(out / name) for name in interrupted), output  # stopped while training
    # every member that trained a step saved where it stood (one stopped before its first step has none)
    trained = [name for name in interrupted if _rows(out / name)]
    assert all(any((out / name / "checkpoints").iterdir()) for name in trained)
    final = launcher(sweep, out, compile_cache)
    output, _ = final.communicate(timeout=600)
    assert final.returncode == 0, output
    assert (out / "results.csv").read_bytes() == (alone[1] / "results.csv").read_bytes()
    completed = collections.Counter(e["run"] for e in Ledger(out).events() if e["event"] == "completed")
    assert completed == {run.name: 1 for run in runs}


def test_plan_shows_each_population_and_its_members(tmp_path, capsys):
    path = write_sweep(tmp_path / "s.yaml", _spec(8))
    runs = plan(load_sweep(path))
    assert main(["sweep", "plan", str(path), "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " pop " in lines[1]
    shown = {
        line.split(":")[0]: set(line.split(": ")[1].split(", ")) for line in lines if "population p" in line
    }
    shapes = {run.shape for run in runs}
    assert len(shown) == len(shapes) == 2
    for shape in shapes:
        members = {run.name for run in runs if run.shape == shape}
        (label,) = [key for key, names in shown.items() if names == members]
        assert shape in label
    assert "4 runs in 2 worker processes" in "\n".join(lines)


def test_grouping_caps_populations_and_keeps_branches_alone(tmp_path):
    spec = sweep_dict(grid={"explicit": {"params": [3e3], "tokens": [2.56e4, 1.28e4, 7680]}})
    spec["recipe"] = {**spec["recipe"], "seeds": 2}
    runs = plan(load_sweep(write_sweep(tmp_path / "a.yaml", spec)))
    sizes = [len(unit.runs) for unit in populations(runs, 4)]
    assert sorted(sizes) == [2, 4] and sum(sizes) == len(runs) == 6
    assert [len(unit.runs) for unit in populations(runs, 1)] == [1] * 6
    flops = [unit.flops for unit in populations(runs, 4)]
    assert flops == sorted(flops, reverse=True)
    for workers in (3, 4, 6, 9):  # at least one population per worker while runs last; every run once
        units = populations(runs, 8, workers)
        assert len(units) == min(workers, len(runs)), workers
        assert sorted(r.name for unit in units for r in unit.runs) == sorted(r.name for r in runs)
    spec["recipe"] = {**spec["recipe"], "schedule": "wsd", "branching": True}
    branched = plan(load_sweep(write_sweep(tmp_path / "b.yaml", spec)))
    units = populations(branched, 8)
    assert [len(unit.runs) for unit in units] == [1] * 6
    order = [unit.runs[0].name for unit in units]
    for run in branched:
        if run.branch_of:
            assert order.index(run.branch_of) < order.index(run.name)  # stable runs first


def test_slurm_submits_one_array_task_per_population(compile_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(compile_cache))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    spec = sweep_dict(grid={"explicit": {"params": [3e3], "tokens": [5120, 2560]}})
    spec = load_sweep(write_sweep(tmp_path / "s.yaml", spec))
    runs = plan(spec)
    ledger = Ledger(tmp_path / "sweep")
    jobs = submit(runs, ledger, spec.slurm, cluster="local", population=8)
    assert [job.result() for job in jobs] == ["completed"]
    assert {run_state(run, ledger).status for run in runs} == {"completed"}
    events = ledger.events()
    assert collections.Counter(e["run"] for e in events if e["event"] == "completed") == {
        r.name: 1 for r in runs
    }
    assert submit(runs, ledger, spec.slurm, cluster="local", population=8) == []
