"""Shared fixtures for the data tests: offline tiktoken files and the real corpora beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
TIKTOKEN_FILES = SHARED / "tiktoken_cache"
GUTENBERG = SHARED / "data" / "gutenberg"


@pytest.fixture(autouse=True, scope="session")
def _tiktoken_cache_dir():
    """Point tiktoken at ../shared/tiktoken_cache unless the caller already chose a cache."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ and TIKTOKEN_FILES.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(TIKTOKEN_FILES)
        yield
        del os.environ["TIKTOKEN_CACHE_DIR"]
    else:
        yield


@pytest.fixture
def gpt2_available(_tiktoken_cache_dir) -> None:
    """Skip unless tiktoken can load gpt2 here (it needs its BPE files: ../shared or a download)."""
    from scaling.data.tokenizer import get_tokenizer
    from scaling.errors import UserError

    try:
        get_tokenizer("gpt2")
    except UserError as err:
        pytest.skip(f"gpt2 BPE files unavailable (no ../shared/tiktoken_cache, no internet): {err}")
