"""Model FLOPs utilisation: achieved model FLOP/s over the devices' peak.

Peaks are dense bfloat16 matmul FLOP/s per JAX device (one chip), from the vendors' data sheets:
- TPU v4 275e12, v5e 197e12, v5p 459e12, v6e 918e12: Cloud TPU system-architecture pages
  (cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e, "Peak compute per chip (bf16)").
- A100 312e12: NVIDIA A100 data sheet (BF16 Tensor Core, dense).
- H100 SXM 989e12, H100 PCIe 756e12, H100 NVL 835e12, H200 989e12: NVIDIA H100/H200 data sheets, whose
  headline figures assume 2:4 sparsity and are halved here to the dense rate.

Anything else (a CPU in particular) gets a peak measured by a float32 matmul probe, cached per machine and
JAX version so that every run on that machine divides by the same number.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp

DeviceTable = tuple[tuple[tuple[str, ...], float, str], ...]

# (substrings that must all occur in the lower-cased device kind, peak FLOP/s, name); first match wins,
# so more specific entries come first. JAX names v5e "TPU v5 lite", v5p "TPU v5", v6e "TPU v6 lite".
PEAK_BF16_FLOPS: DeviceTable = (
    (("tpu v4",), 275e12, "TPU v4"),
    (("tpu v5 lite",), 197e12, "TPU v5e"),
    (("tpu v5e",), 197e12, "TPU v5e"),
    (("tpu v5p",), 459e12, "TPU v5p"),
    (("tpu v5",), 459e12, "TPU v5p"),
    (("tpu v6 lite",), 918e12, "TPU v6e"),
    (("tpu v6e",), 918e12, "TPU v6e"),
    (("a100",), 312e12, "A100"),
    (("h100", "pcie"), 756e12, "H100 PCIe"),
    (("h100", "nvl"), 835e12, "H100 NVL"),
    (("h100",), 989e12, "H100 SXM"),
    (("h200",), 989e12, "H200"),
)


@dataclass(frozen=True)
class PeakFlops:
    """Peak FLOP/s of one device and where the number came from (logged next to every MFU figure)."""

    value: float
    source: str


def kind_entry(table: DeviceTable, kind: str) -> tuple[float, str] | None:
    """(value, name) of the first row of a device table whose substrings are all in the lower-cased
    `device_kind`, or None when no row matches."""
    lowered = kind.lower()
    return next(((value, name) for needles, value, name in table if all(n in lowered for n in needles)), None)


def table_peak(kind: str) -> PeakFlops | None:
    """The data-sheet peak for a `device_kind`, or None when the kind is not in the table."""
    entry = kind_entry(PEAK_BF16_FLOPS, kind)
    if entry is None:
        return None
    return PeakFlops(entry[0], f"table: {entry[1]} dense bf16 (device kind {kind!r})")


def measure_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` FLOP/s of one jitted float32 [n, n] @ [n, n] on the default device."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a_NxN = jax.random.normal(key_a, (n, n), jnp.float32)
    b_NxN = jax.random.normal(key_b, (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a_NxN, b_NxN).block_until_ready()
    return 2 * n**3 / best_seconds(lambda: matmul(a_NxN, b_NxN).block_until_ready(), repeats)


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` timed calls of `run`, which must block until its work is done: on a shared
    machine the fastest call is the one least disturbed by other work."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def cache_dir() -> Path:
    return Path(os.environ.get("SCALING_CACHE_DIR") or Path.home() / ".cache" / "scaling")


def machine_key(n: int) -> str:
    """What the measured peak depends on: CPU model, core count, JAX version and probe size."""
    return f"{cpu_model()}|cores={os.cpu_count()}|jax={jax.__version__}|n={n}"


def measured_peak(n: int = 2048, repeats: int = 5, directory: Path | None = None) -> PeakFlops:
    """The probe's FLOP/s for this machine, measured on first use and then read from a JSON cache."""
    path = (directory or cache_dir()) / "matmul_peak.json"
    key = machine_key(n)
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key in cache:
        return PeakFlops(float(cache[key]), f"measured: float32 {n}x{n} matmul, cached in {path}")
    value = measure_matmul_flops(n, repeats)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**cache, key: value}, indent=1, sort_keys=True))
    tmp.replace(path)
    return PeakFlops(value, f"measured: float32 {n}x{n} matmul, now cached in {path}")


def peak_flops_per_device(kind: str | None = None, directory: Path | None = None) -> PeakFlops:
    """Peak FLOP/s of one device: the table for known accelerators, else the cached matmul probe.

    Simulated CPU devices share the machine's cores, so the probe's figure is split evenly between the
    local devices; `mfu(..., num_devices, peak)` then compares against the whole machine.
    """
    kind = jax.devices()[0].device_kind if kind is None else kind
    known = table_peak(kind)
    if known is not None:
        return known
    measured = measured_peak(directory=directory)
    devices = jax.local_device_count()
    if devices == 1:
        return measured
    return PeakFlops(measured.value / devices, f"{measured.source}, split over {devices} local devices")


def mfu(flops_per_second: float, num_devices: int, peak: PeakFlops) -> float:
    """Achieved model FLOP/s (all devices together) as a fraction of their summed peak."""
    if num_devices < 1 or peak.value <= 0:
        raise ValueError(f"need num_devices >= 1 and a positive peak, got {num_devices}, {peak}")
    return flops_per_second / (num_devices * peak.value)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
