"""Stops at random moments: SIGTERM, Ctrl-C and SIGKILL to `scaling train`, `scaling sweep run` and
`scaling fit`, wherever they land (imports, start-up, compile, steps, evaluation, checkpoint write, the
launcher waiting, a bootstrap), end quickly with one line, and the relaunched job's results equal an
uninterrupted one's, bit for bit."""

from __future__ import annotations

import collections
import csv
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scaling.sweep.collect import write_results
from scaling.sweep.ledger import Ledger
from scaling.sweep.plan import plan
from scaling.sweep.spec import load_sweep
from tests.faults.cases import _COLUMNS, _ROWS
from tests.helpers import (
    REPO,
    run_env,
    run_scaling,
    scaling_cmd,
    start_scaling,
    tiny_run_config,
    write_config,
)
from tests.sweep.sweep_helpers import launcher
from tests.train.test_train_resume import losses

# A trainer stopped by SIGTERM checkpoints first; at these sizes that takes well under a second.
STOP_SECONDS = 10.0


def _stop_within(proc: subprocess.Popen, seconds: float) -> tuple[int, str]:
    started = time.monotonic()
    output, _ = proc.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.1f} s to stop:\n{output}"
    return proc.returncode, output


def test_train_sigterm_and_ctrl_c_at_random_moments_then_resume_matches_uninterrupted(tmp_path, data_cache):
    cfg = write_config(
        tmp_path / "run.yaml",
        tiny_run_config(data_cache, train={"steps": 40, "checkpoint_every": 5, "eval_every": 10}),
    )
    straight = tmp_path / "straight"
    run_scaling("train", str(cfg), "--out", str(straight), "--no-progress")
    stopped = tmp_path / "stopped"
    rng = random.Random(20261202)
    outcomes = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        proc = start_scaling("train", str(cfg), "--out", str(stopped), "--no-progress", output=True)
        time.sleep(rng.uniform(0.5, 6.0))  # start-up (imports, data, compile) takes ~3-5 s here
        proc.send_signal(sig)
        code, output = _stop_within(proc, STOP_SECONDS)
        assert "Traceback" not in output, output
        finished_first = code == -sig and '"status": "completed"' in output  # the signal came at exit
        assert code in (0, 1, 128 + sig) or finished_first, output  # done, stopped in the loop or start-up
        outcomes.append(code)
    run_scaling("train", str(cfg), "--out", str(stopped), "--no-progress")
    assert losses(stopped) == losses(straight)
    assert set(outcomes) - {0}, "every SIGTERM came after the run had finished"


def _rows(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def _started(out: Path) -> int:
    return sum(e["event"] == "started" for e in Ledger(out).events())


def _stop_sweep_soon_after_a_start(proc: subprocess.Popen, out: Path, rng: random.Random, sig: int) -> bool:
    """Send `sig` at a random moment within two seconds of a new run starting; False if the sweep ended."""
    before = _started(out)
    deadline = time.monotonic() + 300
    while proc.poll() is None and _started(out) <= before:
        assert time.monotonic() < deadline, "the launcher started no run"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 2.0))
    if proc.poll() is not None:
        return False
    proc.send_signal(sig)
    return True


def _completed_rows_are_final(runs, out: Path, expected: dict, scratch: Path) -> None:
    _, rows = write_results(runs, Ledger(out), "test", scratch / "partial.csv")
    for row in rows:
        if row["status"] == "completed":
            assert repr(row["loss"]) == expected[row["name"]]["loss"]
        else:
            assert row["loss"] is None


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stopped_sweep_relaunched_matches_uninterrupted_sweep(reference_sweep, compile_cache, tmp_path, sig):
    sweep, reference = reference_sweep
    expected = _rows(reference / "results.csv")
    runs = plan(load_sweep(sweep))
    out = tmp_path / "sweep"
    rng = random.Random(20261121 + sig)
    stops = 0
    for _ in range(4):
        proc = launcher(sweep, out, compile_cache)
        if not _stop_sweep_soon_after_a_start(proc, out, rng, sig):
            break
        code, output = _stop_within(proc, 300 if sig == signal.SIGKILL else 30)
        if sig == signal.SIGTERM:
            assert code == 143 and "Traceback" not in output, output
            assert output.strip().splitlines()[-1].startswith("stopped by SIGTERM"), output
        stops += 1
        _completed_rows_are_final(runs, out, expected, tmp_path)
    final = launcher(sweep, out, compile_cache)
    output, _ = final.communicate(timeout=600)
    assert final.returncode == 0, output
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    events = Ledger(out).events()
    completed = collections.Counter(e["run"] for e in events if e["event"] == "completed")
    assert completed == {run.name: 1 for run in runs}
    assert stops >= 2
    assert _started(out) > len(runs), "no stop interrupted a run"


def test_fit_stopped_at_random_moments_is_one_line_and_writes_nothing(tmp_path):
    table = tmp_path / "results.csv"
    table.write_text(_COLUMNS + _ROWS)
    out = tmp_path / "FIT.json"
    rng = random.Random(7)
    for sig in (signal.SIGINT, signal.SIGTERM) * 4:
        proc = subprocess.Popen(
            scaling_cmd("fit", str(table), "--out", str(out), "--bootstrap", "3000", "--no-progress"),
            env=run_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.05, 2.0))  # imports, reading the table, compiling, the bootstrap
        proc.send_signal(sig)
        started = time.monotonic()
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            out.unlink()  # it had finished: nothing to check
            continue
        assert time.monotonic() - started < STOP_SECONDS, err
        assert proc.returncode == 128 + sig and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("stopped by"), err
        assert not out.exists() and not list(tmp_path.glob(".FIT.json*")), "a stopped fit wrote its output"
