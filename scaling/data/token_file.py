"""Tokenize a corpus once into flat token files, cached by a fingerprint of everything that shapes them.

Layout: <cache>/tokens/<fingerprint>/{train.bin, val.bin, meta.json}. The directory is written under a
temporary name and renamed into place only when complete, so a killed process never leaves a half cache and
concurrent processes (multi-host runs) at worst tokenize twice and keep one result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from scaling.console import progress_bar
from scaling.data.config import DataConfig, cache_root
from scaling.data.corpora import Corpus, documents, resolve_corpus, validation_mask
from scaling.data.tokenizer import Tokenizer, get_tokenizer
from scaling.errors import UserError

# Bump when document rules or the file format change, so old caches are not reused.
FORMAT_VERSION = 1
_BATCH_CHARS = 1 << 22
_BATCH_DOCS = 4096


@dataclass(frozen=True)
class DatasetInfo:
    """What was tokenized, recorded next to the token files."""

    corpus: str
    encoding: str
    dtype: str
    bytes: int
    train_documents: int
    val_documents: int
    train_tokens: int
    val_tokens: int


@dataclass(frozen=True, eq=False)
class TokenDataset:
    """Train and validation token streams (read-only memmaps), documents joined by end-of-text."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Tokenizer
    vocab_size: int
    fingerprint: str
    info: DatasetInfo


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def fingerprint(corpus: Corpus, cfg: DataConfig) -> str:
    """Hash of the input files' names and content, the encoding and the split settings: the cache key."""
    files = [[s.name, s.kind, s.sha256 or _file_sha256(s.path)] for s in corpus.sources]
    key = {
        "format": FORMAT_VERSION,
        "files": files,
        "encoding": cfg.encoding,
        "val_fraction": cfg.val_fraction,
        "split_seed": cfg.split_seed,
        "max_bytes": cfg.max_bytes,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def load_dataset(cfg: DataConfig, *, progress: bool = True) -> TokenDataset:
    """Token streams for `cfg`: from the cache if present, else tokenized now and cached."""
    tokenizer = get_tokenizer(cfg.encoding)
    root = cache_root(cfg.cache_dir)
    corpus = resolve_corpus(cfg.corpus, root, progress=progress)
    key = fingerprint(corpus, cfg)
    directory = root / "tokens" / key
    if not (directory / "meta.json").is_file():
        _build(directory, corpus, cfg, tokenizer, progress=progress)
    info = DatasetInfo(**json.loads((directory / "meta.json").read_text()))
    dtype = np.dtype(info.dtype)
    train = np.memmap(directory / "train.bin", dtype=dtype, mode="r", shape=(info.train_tokens,))
    val = np.memmap(directory / "val.bin", dtype=dtype, mode="r", shape=(info.val_tokens,))
    return TokenDataset(train, val, tokenizer, tokenizer.vocab_size, key, info)


def _build(directory: Path, corpus: Corpus, cfg: DataConfig, tokenizer: Tokenizer, *, progress: bool) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(directory)
    n_docs, n_bytes = 0, 0
    for doc in documents(corpus, cfg.max_bytes):
        n_docs += 1
        n_bytes += len(doc.encode("utf-8"))
    if n_docs == 0:
        raise UserError(f"corpus {corpus.name} is empty: its {len(corpus.sources)} file(s) hold no text")
    is_val = validation_mask(n_docs, cfg.val_fraction, cfg.split_seed)
    dtype = token_dtype(tokenizer.vocab_size)
    eot = np.array([tokenizer.eot_id], dtype=dtype)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp = directory.with_name(f".tmp-{directory.name}-{owner}")
    tmp.mkdir()
    try:
        counts = {False: 0, True: 0}
        with (
            (tmp / "train.bin").open("wb") as train,
            (tmp / "val.bin").open("wb") as val,
            progress_bar(
                total=n_bytes,
                unit="B",
                unit_scale=True,
                desc=f"tokenizing {corpus.name} ({cfg.encoding})",
                disable=not progress,
            ) as bar,
        ):
            outputs: dict[bool, BinaryIO] = {False: train, True: val}
            for start, batch in _batches(documents(corpus, cfg.max_bytes)):
                for offset, ids in enumerate(tokenizer.encode_arrays(batch)):
                    held_out = bool(is_val[start + offset])
                    outputs[held_out].write(ids.astype(dtype, copy=False).tobytes())
                    outputs[held_out].write(eot.tobytes())
                    counts[held_out] += len(ids) + 1
                bar.update(sum(len(doc.encode("utf-8")) for doc in batch))
        info = DatasetInfo(
            corpus=corpus.name,
            encoding=cfg.encoding,
            dtype=dtype.name,
            bytes=n_bytes,
            train_documents=int((~is_val).sum()),
            val_documents=int(is_val.sum()),
            train_tokens=counts[False],
            val_tokens=counts[True],
        )
        (tmp / "meta.json").write_text(json.dumps(dataclasses.asdict(info), indent=1))
        try:
            tmp.rename(directory)
        except OSError:
            if not (directory / "meta.json").is_file():
                raise
            shutil.rmtree(tmp)  # another process finished the same fingerprint first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _batches(docs: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    """Documents grouped into batches of bounded size, with the index of each batch's first document."""
    batch: list[str] = []
    chars, start = 0, 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc)
        if chars >= _BATCH_CHARS or len(batch) >= _BATCH_DOCS:
            yield start, batch
            start += len(batch)
            batch, chars = [], 0
    if batch:
        yield start, batch


def _remove_dead_temporaries(directory: Path) -> None:
    """Delete temporaries of this fingerprint left on this host by processes that no longer exist."""
    prefix = f".tmp-{directory.name}-{socket.gethostname()}-"
    for tmp in directory.parent.glob(f"{prefix}*"):
        pid = tmp.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
