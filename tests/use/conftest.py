"""Fixtures of the use-wing tests: offline tiktoken files and one saved tiny run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.use.helpers import SHARED, TINY, random_params, save_run


@pytest.fixture(autouse=True, scope="session")
def _tiktoken_cache_dir():
    if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken_cache").is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken_cache")
    yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, object, object]:
    """(run directory, graphdef, params) of a saved random-init byte-level model."""
    graphdef, params = random_params(TINY, seed=3)
    return save_run(tmp_path_factory.mktemp("run") / "tiny", params), graphdef, params
