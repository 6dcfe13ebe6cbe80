"""The data section of a run config, validated on construction so a typo fails before any work."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

BUILTIN_CORPORA = ("stdlib", "tinyshakespeare", "tinystories")
TIKTOKEN_ENCODINGS = ("gpt2", "r50k_base", "cl100k_base", "o200k_base")
ENCODINGS = ("bytes", *TIKTOKEN_ENCODINGS)
# A cut vocabulary keeps every single byte (the first 256 ranks) plus end-of-text, so any text still encodes.
MIN_CUT_VOCAB = 257

_CUT = re.compile(r"(?P<base>[a-z0-9_]+):(?P<k>[0-9]+)")


def parse_encoding(encoding: str) -> tuple[str, int | None]:
    """Split "<name>" or "<name>:<K>" into (name, K or None); ValueError naming the valid forms otherwise."""
    valid = (
        f"valid encodings: {', '.join(ENCODINGS)}, or a tiktoken one cut to K tokens as "
        f"'<name>:<K>' (e.g. 'gpt2:8192', K >= {MIN_CUT_VOCAB})"
    )
    if encoding in ENCODINGS:
        return encoding, None
    match = _CUT.fullmatch(encoding)
    if match is None or match["base"] not in TIKTOKEN_ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; {valid}")
    k = int(match["k"])
    if k < MIN_CUT_VOCAB:
        raise ValueError(f"encoding {encoding!r}: K={k} is below {MIN_CUT_VOCAB}; {valid}")
    return match["base"], k


@dataclass(frozen=True)
class DataConfig:
    """Which text, which tokenizer, how it is split.

    corpus: a built-in name (stdlib, tinyshakespeare, tinystories; these win over a same-named local path,
    write ./stdlib for the path) or a path: a .txt file, a directory of .txt files, or a .jsonl file whose
    lines carry a "text" field. val_fraction is the fraction of documents held out, so no document is in both
    splits. max_bytes caps the corpus text (UTF-8 bytes, documents in corpus order, the last one cut).
    cache_dir "" means $SCALING_CACHE_DIR, else ~/.cache/scaling.
    """

    corpus: str = "stdlib"
    encoding: str = "bytes"
    val_fraction: float = 0.05
    split_seed: int = 0
    max_bytes: int | None = None
    cache_dir: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.corpus, str) or not self.corpus.strip():
            raise ValueError(
                f"corpus must be one of {', '.join(BUILTIN_CORPORA)} or a path, got {self.corpus!r}"
            )
        if not isinstance(self.encoding, str):
            raise ValueError(f"encoding must be a string, got {self.encoding!r}")
        parse_encoding(self.encoding)
        if (
            isinstance(self.val_fraction, bool)
            or not isinstance(self.val_fraction, int | float)
            or not 0 < self.val_fraction < 1
        ):
            raise ValueError(f"val_fraction must be a number in (0, 1), got {self.val_fraction!r}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or self.split_seed < 0:
            raise ValueError(f"split_seed must be a non-negative integer, got {self.split_seed!r}")
        if self.max_bytes is not None and (
            isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes <= 0
        ):
            raise ValueError(f"max_bytes must be a positive integer or null, got {self.max_bytes!r}")
        if not isinstance(self.cache_dir, str):
            raise ValueError(f"cache_dir must be a string, got {self.cache_dir!r}")


def cache_root(cache_dir: str) -> Path:
    """Where downloads and token files live: explicit dir, else $SCALING_CACHE_DIR, else ~/.cache/scaling."""
    chosen = cache_dir or os.environ.get("SCALING_CACHE_DIR") or str(Path.home() / ".cache" / "scaling")
    return Path(chosen).expanduser()
