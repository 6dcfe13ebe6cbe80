"""Tokenizers: byte-level (no download) and tiktoken encodings, optionally cut to a smaller vocabulary.

A cut "<name>:<K>" keeps the encoding's first K-1 BPE ranks and puts end-of-text at id K-1. BPE merges in
rank order and a merged token outranks its parts, so on text whose full encoding uses only ranks below K-1
the cut encoding gives the same ids; elsewhere it falls back to shorter pieces, down to single bytes.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tiktoken

from scaling.data.config import parse_encoding
from scaling.errors import UserError

EOT_TEXT = "<|endoftext|>"


class Tokenizer(ABC):
    """A named encoding with an end-of-text id; ids are always in [0, vocab_size)."""

    name: str
    vocab_size: int
    eot_id: int

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of `text`, treating a literal "<|endoftext|>" as ordinary text (only the pipeline adds EOT)."""

    @abstractmethod
    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of `ids`; the end-of-text id renders as "<|endoftext|>", invalid UTF-8 as U+FFFD."""

    @abstractmethod
    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Ids of many texts as integer arrays, without building Python lists (used for large corpora)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id})"


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as ids 0-255 and end-of-text as 256: no download, no merges."""

    def __init__(self) -> None:
        self.name = "bytes"
        self.vocab_size = 257
        self.eot_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for text in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"byte ids must be in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        pieces = np.split(ids, np.flatnonzero(ids == self.eot_id))
        texts = (bytes(p[p != self.eot_id].astype(np.uint8)).decode("utf-8", "replace") for p in pieces)
        return EOT_TEXT.join(texts)


class TiktokenTokenizer(Tokenizer):
    """A tiktoken Encoding whose end-of-text token is the only special token we use."""

    def __init__(self, name: str, encoding: tiktoken.Encoding) -> None:
        self.name = name
        self._encoding = encoding
        self.eot_id = encoding.eot_token
        self.vocab_size = encoding.n_vocab
        self._threads = max(1, min(8, os.cpu_count() or 1))

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def _encode_array(self, text: str) -> np.ndarray:
        return self._encoding.encode_to_numpy(text, disallowed_special=())

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        # tiktoken releases the GIL while encoding, so threads use every core.
        if len(texts) <= 1 or self._threads == 1:
            return [self._encode_array(text) for text in texts]
        with ThreadPoolExecutor(self._threads) as pool:
            return list(pool.map(self._encode_array, texts))

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._encoding.decode([int(i) for i in ids])


def _load_tiktoken(base: str) -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding(base)
    except Exception as err:
        reason = (str(err).splitlines() or [""])[0][:160]
        where = os.environ.get("TIKTOKEN_CACHE_DIR") or "unset"
        raise UserError(
            f"cannot load the {base} encoding: tiktoken fetches its BPE file on first use and that failed "
            f"({type(err).__name__}: {reason}); put the file in TIKTOKEN_CACHE_DIR (now {where}) "
            "or run once with internet access"
        ) from None


def _cut(base: str, encoding: tiktoken.Encoding, k: int) -> tiktoken.Encoding:
    ranks = encoding._mergeable_ranks
    if k - 1 > len(ranks):
        raise UserError(
            f"encoding {base}:{k}: K={k} is larger than {base}'s vocabulary "
            f"({len(ranks)} BPE tokens + end-of-text = {len(ranks) + 1})"
        )
    kept = {token: rank for token, rank in ranks.items() if rank < k - 1}
    if any(bytes([b]) not in kept for b in range(256)):
        raise UserError(f"encoding {base}:{k}: the first {k - 1} ranks do not cover all 256 bytes")
    return tiktoken.Encoding(
        name=f"{base}:{k}",
        pat_str=encoding._pat_str,
        mergeable_ranks=kept,
        special_tokens={EOT_TEXT: k - 1},
    )


@functools.lru_cache(maxsize=16)
def get_tokenizer(encoding: str) -> Tokenizer:
    """The tokenizer for an encoding string ("bytes", "gpt2", "gpt2:8192", ...); UserError if unusable."""
    try:
        base, k = parse_encoding(encoding)
    except ValueError as err:
        raise UserError(str(err)) from None
    if base == "bytes":
        return ByteTokenizer()
    full = _load_tiktoken(base)
    return TiktokenTokenizer(encoding, full if k is None else _cut(base, full, k))
