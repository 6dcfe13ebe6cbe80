"""Corpora: where the text comes from and how it is cut into documents.

Document rules (the unit of the train/validation split, each followed by end-of-text in the token stream):
- stdlib: each .py file of this interpreter's standard library is one document. site-packages and test
  directories (test, tests, idle_test) are left out: the tests are ~60% of the bytes and are mostly
  fixtures, the rest is ~12 MB of real library code. Files are sorted by relative path.
- .txt file: split at runs of 4+ newlines (three blank lines: the Gutenberg shards' book separator) and at
  "<|endoftext|>" (the TinyStories separator). A directory is its .txt files, recursively, by relative path.
- .jsonl file: one document per non-blank line, its "text" field.
Every document is stripped of leading and trailing newlines; empty ones are dropped. If a whole corpus is
one document (tinyshakespeare), it is cut at line ends into chunks of min(16384, length // 20) characters,
so the validation split is whole chunks.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from scaling.data.config import BUILTIN_CORPORA
from scaling.data.download import download
from scaling.data.jsonl import text_records
from scaling.errors import UserError

Kind = Literal["whole", "txt", "jsonl"]

_SEPARATOR_MAX = len("<|endoftext|>")
_READ_CHARS = 1 << 22
CHUNK_CHARS = 16384
_STDLIB_SKIP = frozenset({"site-packages", "test", "tests", "idle_test", "__pycache__"})


@dataclass(frozen=True)
class RemoteText:
    url: str
    sha256: str | None
    filename: str


# tinystories has no pinned hash: none could be verified offline when this was written; the first download
# prints the file's sha256 so it can be pinned here.
REMOTE_CORPORA = {
    "tinyshakespeare": RemoteText(
        "https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/"
        "data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "input.txt",
    ),
    "tinystories": RemoteText(
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        None,
        "TinyStoriesV2-GPT4-train.txt",
    ),
}


@dataclass(frozen=True)
class Source:
    """One input file; `name` (its relative path) fixes document order and enters the fingerprint."""

    path: Path
    name: str
    kind: Kind
    sha256: str | None = None  # known content hash (a verified download); None means hash the file


@dataclass(frozen=True)
class Corpus:
    name: str
    sources: tuple[Source, ...]


def resolve_corpus(corpus: str, root: Path, *, progress: bool = True) -> Corpus:
    """Turn a corpus name or path into its input files, downloading a remote built-in if needed."""
    if corpus == "stdlib":
        return Corpus(corpus, _stdlib_sources())
    if corpus in REMOTE_CORPORA:
        remote = REMOTE_CORPORA[corpus]
        dest = root / "corpora" / corpus / remote.filename
        path = download(remote.url, remote.sha256, dest, progress=progress)
        return Corpus(corpus, (Source(path, remote.filename, "txt", remote.sha256),))
    path = Path(corpus).expanduser()
    if not path.exists():
        raise UserError(
            f"data path {path} does not exist; data.corpus must be {', '.join(BUILTIN_CORPORA)}, "
            "a .txt file, a directory of .txt files, or a .jsonl file"
        )
    if path.is_dir():
        files = sorted(path.rglob("*.txt"), key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise UserError(f"data directory {path} has no .txt files")
        return Corpus(corpus, tuple(Source(f, f.relative_to(path).as_posix(), "txt") for f in files))
    if path.suffix == ".txt":
        return Corpus(corpus, (Source(path, path.name, "txt"),))
    if path.suffix == ".jsonl":
        return Corpus(corpus, (Source(path, path.name, "jsonl"),))
    raise UserError(f"data file {path} is neither .txt nor .jsonl")


def _stdlib_sources() -> tuple[Source, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in _STDLIB_SKIP]  # prune: site-packages is huge
        files += [Path(folder, name) for name in names if name.endswith(".py")]
    return tuple(
        Source(path, path.relative_to(root).as_posix(), "whole")
        for path in sorted(files, key=lambda p: p.relative_to(root).as_posix())
    )


def documents(corpus: Corpus, max_bytes: int | None = None) -> Iterator[str]:
    """The corpus's documents in order, capped at `max_bytes` UTF-8 bytes, a lone document cut into chunks."""
    docs = _capped(_all_documents(corpus), max_bytes)
    first = next(docs, None)
    if first is None:
        return
    second = next(docs, None)
    if second is None:
        yield from _chunks(first)
        return
    yield first
    yield second
    yield from docs


def _all_documents(corpus: Corpus) -> Iterator[str]:
    for source in corpus.sources:
        try:
            for doc in _source_documents(source):
                doc = doc.strip("\n")
                if doc:
                    yield doc
        except UnicodeDecodeError as err:
            raise UserError(f"{source.path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _source_documents(source: Source) -> Iterator[str]:
    if source.kind == "whole":
        yield source.path.read_text(encoding="utf-8")
    elif source.kind == "txt":
        yield from _split_stream(source.path)
    else:
        yield from (record["text"] for _, record in text_records(source.path))


def _split_stream(path: Path) -> Iterator[str]:
    """Split a text file at separators while reading it in pieces, so a huge file never sits in memory.

    str.split on the literal separators is several times faster than a regex; splitting at every four
    newlines and then stripping newlines gives the same documents as splitting at runs of 4+.
    """
    parts: list[str] = []  # the unfinished document
    with path.open(encoding="utf-8") as handle:
        while chunk := handle.read(_READ_CHARS):
            carry = ""  # a separator may straddle the boundary: re-scan the last few characters
            if parts:
                carry = parts[-1][-(_SEPARATOR_MAX - 1) :]
                parts[-1] = parts[-1][: len(parts[-1]) - len(carry)]
            pieces = [p for q in (carry + chunk).split("<|endoftext|>") for p in q.split("\n\n\n\n")]
            parts.append(pieces[0])
            if len(pieces) > 1:
                yield "".join(parts)
                yield from pieces[1:-1]
                parts = [pieces[-1]]
    yield "".join(parts)


def _capped(docs: Iterator[str], max_bytes: int | None) -> Iterator[str]:
    if max_bytes is None:
        yield from docs
        return
    remaining = max_bytes
    for doc in docs:
        encoded = doc.encode("utf-8")
        if len(encoded) >= remaining:
            cut = encoded[:remaining].decode("utf-8", "ignore").strip("\n")
            if cut:
                yield cut
            return
        remaining -= len(encoded)
        yield doc


def _chunks(doc: str) -> Iterator[str]:
    size = max(1, min(CHUNK_CHARS, len(doc) // 20))
    lines: list[str] = []
    length = 0
    for line in doc.splitlines(keepends=True):
        lines.append(line)
        length += len(line)
        if length >= size:
            if chunk := "".join(lines).strip("\n"):
                yield chunk
            lines, length = [], 0
    if chunk := "".join(lines).strip("\n"):
        yield chunk


def validation_mask(n_documents: int, val_fraction: float, seed: int) -> np.ndarray:
    """Which documents are held out: round(val_fraction * n), at least one each side, chosen by `seed`."""
    if n_documents < 2:
        raise UserError(
            f"the corpus has {n_documents} document(s); a train/validation split needs at least 2 "
            "(use a larger corpus or a larger max_bytes)"
        )
    n_val = min(n_documents - 1, max(1, round(val_fraction * n_documents)))
    mask = np.zeros(n_documents, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n_documents)[:n_val]] = True
    return mask
