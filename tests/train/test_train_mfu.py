"""MFU: the peak table maps JAX device kinds to the right chip, and the CPU probe is measured once."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest

from scaling.train import mfu as mfu_module
from scaling.train.mfu import (
    PeakFlops,
    measure_matmul_flops,
    measured_peak,
    mfu,
    peak_flops_per_device,
    table_peak,
)


@pytest.mark.parametrize(
    ("kind", "peak"),
    [
        ("TPU v4", 275e12),
        ("TPU v5 lite", 197e12),  # what JAX reports on a v5e
        ("TPU v5e", 197e12),
        ("TPU v5", 459e12),  # what JAX reports on a v5p
        ("TPU v5p", 459e12),
        ("TPU v6 lite", 918e12),  # v6e, Trillium
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100 80GB PCIe", 312e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 NVL", 835e12),
        ("NVIDIA H200", 989e12),
    ],
)
def test_table_maps_device_kinds(kind: str, peak: float) -> None:
    found = table_peak(kind)
    assert found is not None and found.value == peak
    assert kind in found.source


@pytest.mark.parametrize("kind", ["cpu", "TPU v3", "NVIDIA GeForce RTX 4090"])
def test_unknown_kinds_are_not_guessed(kind: str) -> None:
    assert table_peak(kind) is None


def test_probe_counts_two_n_cubed_flops_over_the_best_time(monkeypatch: pytest.MonkeyPatch) -> None:
    durations = iter([0.5, 0.25, 0.4])
    clock = {"now": 0.0, "start": True}

    def fake_clock() -> float:
        if not clock["start"]:
            clock["now"] += next(durations)
        clock["start"] = not clock["start"]
        return clock["now"]

    monkeypatch.setattr(mfu_module.time, "perf_counter", fake_clock)
    assert measure_matmul_flops(n=64, repeats=3) == pytest.approx(2 * 64**3 / 0.25)


def test_probe_is_measured_once_and_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(mfu_module, "measure_matmul_flops", lambda n, repeats: calls.append(n) or 1.5e11)
    first = measured_peak(directory=tmp_path)
    second = measured_peak(directory=tmp_path)
    assert calls == [2048]
    assert first.value == second.value == 1.5e11
    assert "cached" in second.source
    cache = json.loads((tmp_path / "matmul_peak.json").read_text())
    assert list(cache) == [mfu_module.machine_key(2048)]
    assert jax.__version__ in mfu_module.machine_key(2048)

    monkeypatch.setattr(mfu_module.jax, "__version__", "0.0.0-other")  # another JAX: measured anew
    assert measured_peak(directory=tmp_path).value == 1.5e11
    assert calls == [2048, 2048]
    assert len(json.loads((tmp_path / "matmul_peak.json").read_text())) == 2


def test_cpu_peak_comes_from_the_real_probe(tmp_path: Path) -> None:
    peak = peak_flops_per_device("cpu", directory=tmp_path)
    assert peak.source.startswith("measured")
    assert 1e9 < peak.value < 1e14  # a real CPU, between 1 GFLOP/s and 100 TFLOP/s
    assert peak_flops_per_device("cpu", directory=tmp_path) == PeakFlops(
        peak.value, peak.source.replace("now cached", "cached")
    )


def test_mfu_divides_by_the_summed_peak() -> None:
    peak = PeakFlops(100e12, "test")
    assert mfu(200e12, 4, peak) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mfu(1.0, 0, peak)
