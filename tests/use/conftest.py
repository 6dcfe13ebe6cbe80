"""Fixtures of the use-wing tests: one saved tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.use.helpers import TINY, random_params, save_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, object, object]:
    """(run directory, graphdef, params) of a saved random-init byte-level model."""
    graphdef, params = random_params(TINY, seed=3)
    return save_run(tmp_path_factory.mktemp("run") / "tiny", params), graphdef, params
