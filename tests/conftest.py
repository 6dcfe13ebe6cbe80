import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken_cache").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken_cache")


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One token cache for the whole session, so each corpus is tokenized once."""
    return tmp_path_factory.mktemp("token-cache")
