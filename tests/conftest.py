import os
from pathlib import Path

import pytest

from tests.sweep.sweep_helpers import TINY_SWEEP, launcher, write_sweep

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken_cache").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken_cache")


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One token cache for the whole session, so each corpus is tokenized once."""
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory) -> Path:
    """One persistent compilation cache for every launched sweep, so relaunches skip most compiles."""
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
