import json
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scaling.data import corpora
from scaling.data.corpora import documents, resolve_corpus, validation_mask
from scaling.errors import UserError


def docs_of(path: Path, max_bytes: int | None = None) -> list[str]:
    return list(documents(resolve_corpus(str(path), path.parent), max_bytes))


def test_txt_splits_at_three_blank_lines_and_endoftext(tmp_path):
    books = ["Book one.\n\nChapter 1\n", "Book two\nline\n", "Story three", "Story four\n"]
    text = books[0] + "\n\n\n" + books[1] + "\n\n\n" + books[2] + "\n<|endoftext|>\n" + books[3]
    (tmp_path / "c.txt").write_text(text)
    assert docs_of(tmp_path / "c.txt") == [b.strip("\n") for b in books]


def test_streaming_split_matches_whole_file_split(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pieces = ["".join(rng.choice(list("ab \n"), size=rng.integers(1, 40))) for _ in range(300)]
    seps = rng.choice(["\n\n\n\n", "<|endoftext|>"], size=len(pieces) - 1)
    text = pieces[0] + "".join(sep + piece for sep, piece in zip(seps, pieces[1:], strict=True))
    (tmp_path / "c.txt").write_text(text)
    expected = docs_of(tmp_path / "c.txt")
    monkeypatch.setattr(corpora, "_READ_CHARS", 7)  # separators now straddle read boundaries
    assert docs_of(tmp_path / "c.txt") == expected
    independent = [d.strip("\n") for d in re.split(r"\n{4,}|<\|endoftext\|>", text)]
    assert expected == [d for d in independent if d]


def test_directory_is_sorted_txt_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "z.md").write_text("ignored")
    assert list(documents(resolve_corpus(str(tmp_path), tmp_path))) == ["first", "second"]


def test_jsonl_documents_and_bad_lines(tmp_path):
    good = tmp_path / "d.jsonl"
    good.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two\n", "id": 3}) + "\n")
    assert docs_of(good) == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    with pytest.raises(UserError, match=r'bad\.jsonl:2: no "text" field'):
        docs_of(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(UserError, match=r"broken\.jsonl:1: not valid JSON"):
        docs_of(broken)


def test_bad_paths(tmp_path):
    with pytest.raises(
        UserError, match=r"data path .*missing\.txt does not exist; data\.corpus must be stdlib,"
    ):
        resolve_corpus(str(tmp_path / "missing.txt"), tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match=r"has no \.txt files"):
        resolve_corpus(str(tmp_path / "empty_dir"), tmp_path)
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(UserError, match=r"neither \.txt nor \.jsonl"):
        resolve_corpus(str(tmp_path / "x.csv"), tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt is not UTF-8 text"):
        docs_of(tmp_path / "latin1.txt")


def test_single_document_is_cut_into_line_chunks(tmp_path):
    lines = [f"line {i}: " + "x" * (i % 50) + "\n" for i in range(2000)]
    (tmp_path / "one.txt").write_text("".join(lines))
    chunks = docs_of(tmp_path / "one.txt")
    size = min(corpora.CHUNK_CHARS, len("".join(lines)) // 20)
    assert 15 <= len(chunks) <= 21
    assert all(len(c) >= size - 1 for c in chunks[:-1])
    assert "\n".join(chunks) + "\n" == "".join(lines)  # whole lines, nothing lost, nothing repeated


def test_max_bytes_takes_documents_in_order_and_cuts_the_last(tmp_path):
    (tmp_path / "c.txt").write_text("aaaa\n\n\n\nbbbbé\n\n\n\ncccc")
    assert docs_of(tmp_path / "c.txt", max_bytes=8) == ["aaaa", "bbbb"]
    assert docs_of(tmp_path / "c.txt", max_bytes=9) == ["aaaa", "bbbb"]  # never half a character
    assert docs_of(tmp_path / "c.txt", max_bytes=10) == ["aaaa", "bbbbé"]


def test_stdlib_corpus_is_this_interpreters_library_without_tests():
    corpus = resolve_corpus("stdlib", Path("/nonexistent"))
    root = Path(sysconfig.get_paths()["stdlib"])
    names = [s.name for s in corpus.sources]
    assert names == sorted(names)
    assert "os.py" in names and "json/decoder.py" in names
    assert not any(part in {"test", "tests", "site-packages"} for n in names for part in n.split("/"))
    assert all((root / n).is_file() and n.endswith(".py") for n in names)


def test_validation_mask():
    mask = validation_mask(100, 0.05, seed=3)
    assert mask.sum() == 5
    assert (mask == validation_mask(100, 0.05, seed=3)).all()
    assert not (mask == validation_mask(100, 0.05, seed=4)).all()
    assert validation_mask(3, 0.01, 0).sum() == 1 and validation_mask(3, 0.99, 0).sum() == 2
    with pytest.raises(UserError, match="needs at least 2"):
        validation_mask(1, 0.5, 0)
