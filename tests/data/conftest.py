"""Shared fixtures for the data tests: the real corpora beside the checkout, and a gpt2 availability gate.

tests/conftest.py points TIKTOKEN_CACHE_DIR at ../shared/tiktoken_cache when the caller has not chosen one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
TIKTOKEN_FILES = SHARED / "tiktoken_cache"
GUTENBERG = SHARED / "data" / "gutenberg"


@pytest.fixture
def gpt2_available() -> None:
    """Skip unless tiktoken can load gpt2 here (it needs its BPE files: ../shared or a download)."""
    from scaling.data.tokenizer import get_tokenizer
    from scaling.errors import UserError

    try:
        get_tokenizer("gpt2")
    except UserError as err:
        pytest.skip(f"gpt2 BPE files unavailable (no ../shared/tiktoken_cache, no internet): {err}")
