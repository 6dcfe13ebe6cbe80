"""The local launcher: two launchers at once, failures, and the submitit (SLURM) path (stops at random
moments are in tests/faults/test_stops.py)."""

from __future__ import annotations

import collections
import csv

from scaling.cli import main
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.slurm import submit
from scaling.sweep.spec import load_sweep
from scaling.sweep.status import run_state
from tests.sweep.sweep_helpers import TINY_SWEEP, launcher, sweep_dict, write_sweep


def _rows(path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def _count(events: list[dict], kind: str) -> collections.Counter:
    return collections.Counter(e["run"] for e in events if e["event"] == kind)


def test_two_launchers_at_once_share_the_work(compile_cache, tmp_path):
    sweep = write_sweep(tmp_path / "tiny.yaml", TINY_SWEEP)
    out = tmp_path / "sweep"
    procs = [launcher(sweep, out, compile_cache) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    events = Ledger(out).events()
    names = [run.name for run in plan(load_sweep(sweep))]
    assert _count(events, "started") == dict.fromkeys(names, 1)
    assert _count(events, "completed") == dict.fromkeys(names, 1)
    assert len({e["pid"] for e in events if e["event"] == "started"}) == 2
    assert any(
        "wait " in line and "another launcher holds it" in line
        for out in outputs
        for line in out.splitlines()
    )
    rows = _rows(out / "results.csv")
    assert [row["status"] for row in rows.values()] == ["completed"] * len(names)


def test_failed_run_is_recorded_and_retried_only_on_request(compile_cache, tmp_path, capsys):
    spec = sweep_dict(grid={"explicit": {"params": [3e3], "tokens": [2560]}})
    spec["base"]["data"]["max_bytes"] = 2000  # too little text for a validation window: the trainer refuses
    sweep = write_sweep(tmp_path / "failing.yaml", spec)
    out = tmp_path / "sweep"
    for extra in ((), (), ("--retry-failed",)):
        proc = launcher(sweep, out, compile_cache, *extra)
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 1, output
    (run,) = plan(load_sweep(sweep))
    state = run_state(run, Ledger(out))
    assert state.status == "failed" and "exit code 2: error:" in state.reason
    events = Ledger(out).events()
    assert _count(events, "started")[run.name] == 2
    assert _count(events, "failed")[run.name] == 2
    assert main(["sweep", "status", str(sweep), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert run.name in table and "failed" in table and "error:" in table


def test_submitit_local_executor_runs_the_array(compile_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(compile_cache))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    spec = load_sweep(
        write_sweep(tmp_path / "s.yaml", sweep_dict(grid={"explicit": {"params": [3e3], "tokens": [5120]}}))
    )
    runs = plan(spec)
    ledger = Ledger(tmp_path / "sweep")
    jobs = submit(runs, ledger, spec.slurm, cluster="local")
    assert [job.result() for job in jobs] == ["completed"]
    assert run_state(runs[0], ledger).status == "completed"
    assert _count(ledger.events(), "completed") == {runs[0].name: 1}
    assert submit(runs, ledger, spec.slurm, cluster="local") == []
