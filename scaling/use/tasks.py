"""Labelled text for fine-tuning: a user's JSONL file, or the built-in Gutenberg author-attribution task.

Author attribution: which of K authors wrote a passage. An author is a top-level folder of the source
paths in the corpus's `books.tsv`. Each author's books are ordered by the sha256 of their path; the first
`test_books_per_author` are held out, so every test passage comes from a book never seen in training.
Passages are runs of whole lines of about `passage_chars` characters, cut consecutively (no overlap)
from each book after its first `skip_fraction` (title pages, contents), then drawn without replacement.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling.data.jsonl import text_records
from scaling.errors import UserError


@dataclass(frozen=True)
class AuthorTaskConfig:
    data_dir: str = "../shared/data/gutenberg"
    authors: tuple[str, ...] = ()
    test_books_per_author: int = 1
    passage_chars: int = 300
    skip_fraction: float = 0.03
    train_passages_per_author: int = 300
    test_passages_per_author: int = 60
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.authors) < 2:
            raise ValueError(f"authors must list at least 2 author folders, got {list(self.authors)}")
        if self.test_books_per_author < 1 or self.passage_chars < 1:
            raise ValueError("test_books_per_author and passage_chars must be >= 1")
        if self.train_passages_per_author < 1 or self.test_passages_per_author < 1:
            raise ValueError("train_passages_per_author and test_passages_per_author must be >= 1")
        if not 0 <= self.skip_fraction < 1:
            raise ValueError(f"skip_fraction must be in [0, 1), got {self.skip_fraction}")


@dataclass(frozen=True)
class TaskData:
    """Texts with integer labels indexing `label_names`; `test_*` is the held-out split."""

    label_names: tuple[str, ...]
    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    notes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Book:
    shard: str
    offset: int
    length: int
    path: str

    @property
    def author(self) -> str:
        return self.path.split("/", 1)[0]


def read_books_index(data_dir: Path) -> list[Book]:
    index = data_dir / "books.tsv"
    if not index.is_file():
        raise UserError(
            f"the author task needs the Gutenberg corpus: {index} does not exist; set authors.data_dir to "
            "the folder holding books.tsv and the text shards (../shared/data/gutenberg in this lab)"
        )
    with index.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [Book(r["file"], int(r["byte_offset"]), int(r["byte_length"]), r["source_path"]) for r in rows]


def book_text(data_dir: Path, book: Book) -> str:
    with (data_dir / book.shard).open("rb") as handle:
        handle.seek(book.offset)
        return handle.read(book.length).decode("utf-8")


def split_books(books: list[Book], cfg: AuthorTaskConfig) -> tuple[list[Book], list[Book]]:
    """(train books, test books) of the configured authors; UserError if an author has too few books."""
    train, test = [], []
    for author in cfg.authors:
        own = sorted(
            (b for b in books if b.author == author), key=lambda b: hashlib.sha256(b.path.encode()).digest()
        )
        if len(own) <= cfg.test_books_per_author:
            raise UserError(
                f"author {author!r} has {len(own)} book(s) in books.tsv; the task needs more than "
                f"test_books_per_author={cfg.test_books_per_author} (check the folder name's spelling)"
            )
        test += own[: cfg.test_books_per_author]
        train += own[cfg.test_books_per_author :]
    return train, test


def passages(text: str, cfg: AuthorTaskConfig) -> list[str]:
    lines = text[int(len(text) * cfg.skip_fraction) :].splitlines(keepends=True)[1:]  # first may be cut
    out, current = [], ""
    for line in lines:
        current += line
        if len(current) >= cfg.passage_chars:
            if current.strip():
                out.append(current.strip("\n"))
            current = ""
    return out


def _draw(books: list[Book], label: int, count: int, data_dir: Path, cfg: AuthorTaskConfig, rng):
    pool = [p for b in books for p in passages(book_text(data_dir, b), cfg)]
    chosen = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return [pool[i] for i in sorted(chosen)], [label] * len(chosen)


def author_task(cfg: AuthorTaskConfig) -> TaskData:
    data_dir = Path(cfg.data_dir).expanduser()
    train_books, test_books = split_books(read_books_index(data_dir), cfg)
    rng = np.random.default_rng(cfg.seed)
    splits: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, author in enumerate(cfg.authors):
        for split, books, count in (
            ("train", train_books, cfg.train_passages_per_author),
            ("test", test_books, cfg.test_passages_per_author),
        ):
            texts, labels = _draw([b for b in books if b.author == author], label, count, data_dir, cfg, rng)
            splits[split][0].extend(texts)
            splits[split][1].extend(labels)
    return TaskData(
        label_names=tuple(cfg.authors),
        train_texts=splits["train"][0],
        train_labels=np.asarray(splits["train"][1], np.int32),
        test_texts=splits["test"][0],
        test_labels=np.asarray(splits["test"][1], np.int32),
        notes={"test_books": [b.path for b in test_books], "train_books": len(train_books)},
    )


def jsonl_task(path: str | Path, test_fraction: float, seed: int) -> TaskData:
    """A JSONL file of {"text": str, "label": str|int} lines; a seeded `test_fraction` is held out."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"task file {path} does not exist")
    texts, raw_labels = [], []
    for number, row in text_records(path):
        if "label" not in row or not isinstance(row["label"], str | int) or isinstance(row["label"], bool):
            raise UserError(f'{path}:{number}: the "label" (a string or integer) is missing')
        texts.append(row["text"])
        raw_labels.append(str(row["label"]))
    names = tuple(sorted(set(raw_labels)))
    if len(names) < 2:
        raise UserError(f"{path}: a classification task needs at least 2 distinct labels, got {list(names)}")
    labels = np.asarray([names.index(label) for label in raw_labels], np.int32)
    order = np.random.default_rng(seed).permutation(len(texts))
    n_test = max(1, round(test_fraction * len(texts)))
    if n_test >= len(texts):
        raise UserError(
            f"{path}: {len(texts)} examples are too few to hold out {test_fraction:.0%} for testing"
        )
    test, train = order[:n_test], order[n_test:]
    return TaskData(
        label_names=names,
        train_texts=[texts[i] for i in train],
        train_labels=labels[train],
        test_texts=[texts[i] for i in test],
        test_labels=labels[test],
    )
