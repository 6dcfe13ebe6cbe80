"""The plan's estimates: time (each shape at its own measured throughput, other shapes at the median) and
memory per device (a column, and a warning for each run that would not fit)."""

from types import SimpleNamespace

from scaling.cli import main
from scaling.sweep import memory
from scaling.sweep.estimate import run_throughput
from scaling.sweep.memory import run_estimate
from scaling.sweep.plan import plan
from scaling.sweep.spec import LaunchConfig, load_sweep
from scaling.train.memory_estimate import human_bytes
from tests.sweep.sweep_helpers import TINY_SWEEP, write_sweep


def _finished(flops_per_token: int, flops_per_second: float):
    return SimpleNamespace(
        completed=True, flops_per_token=flops_per_token, tokens_per_second=flops_per_second / flops_per_token
    )


def test_each_measured_shape_has_its_own_throughput():
    summaries = [_finished(100, 1e9), _finished(100, 3e9), _finished(1000, 8e9)]
    throughput = run_throughput(LaunchConfig(platform="cpu"), 2, summaries)
    assert throughput.seconds(2e9, 100) == 1.0  # median of 1e9 and 3e9 FLOP/s
    assert throughput.seconds(8e9, 1000) == 1.0
    assert throughput.seconds(3e9, 555) == 1.0  # an unmeasured shape: the median of all three runs
    assert "2 shapes of 3 finished runs" in throughput.how


def test_assumed_throughput_with_more_workers_than_cores_splits_the_cores(monkeypatch):
    from scaling.train import mfu

    monkeypatch.setattr(mfu, "measured_peak", lambda: mfu.PeakFlops(8e10, "test"))
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    launch = LaunchConfig(platform="cpu", assumed_mfu=0.1)
    assert run_throughput(launch, 2, []).flops_per_second == 0.1 * 8e10 / 2
    assert run_throughput(launch, 1, []).flops_per_second == 0.1 * 8e10


def test_plan_shows_each_runs_memory_and_warns_of_those_that_do_not_fit(tmp_path, capsys, monkeypatch):
    spec = load_sweep(write_sweep(tmp_path / "s.yaml", TINY_SWEEP))
    runs = plan(spec)
    needs = [run_estimate(run, spec.launch).total for run in runs]
    assert needs == sorted(needs) and needs[0] < needs[-1]  # the grid's sizes grow
    workers = spec.launch.workers
    monkeypatch.setattr(memory, "host_available_bytes", lambda: workers * (needs[-2] + needs[-1]) // 2)
    assert main(["sweep", "plan", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    assert "memory/dev" in table.splitlines()[1]
    for run, need in zip(runs, needs, strict=True):
        (row,) = [line for line in table.splitlines() if line.startswith(f"{run.name} ")]
        assert row.endswith(f" {human_bytes(need)}"), row
    warnings = [line for line in table.splitlines() if line.startswith("warning: ")]
    assert [w.split()[2] for w in warnings] == [runs[-1].name]
    assert "recipe.micro_batches=" in warnings[0]
