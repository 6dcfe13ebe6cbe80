"""Session fixtures for the sweep tests: one compilation cache, one uninterrupted reference sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sweep.sweep_helpers import TINY_SWEEP, launcher, write_sweep


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory, compile_cache) -> tuple[Path, Path]:
    """The tiny sweep run once without interruption: (sweep file, sweep directory)."""
    root = tmp_path_factory.mktemp("reference")
    sweep = write_sweep(root / "tiny.yaml", TINY_SWEEP)
    out = root / "sweep"
    proc = launcher(sweep, out, compile_cache)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    return sweep, out
