"""The plan's time estimate: each shape at its own measured throughput, other shapes at the median."""

from types import SimpleNamespace

from scaling.sweep.estimate import run_throughput
from scaling.sweep.spec import LaunchConfig


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
