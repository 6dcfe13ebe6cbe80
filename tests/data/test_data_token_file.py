import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scaling
from scaling.data import DataConfig, load_dataset
from scaling.data.tokenizer import ByteTokenizer, TiktokenTokenizer
from scaling.errors import UserError

REPO = str(Path(scaling.__file__).resolve().parents[1])
DOCS = [f"Document {i}: " + "word " * (5 + i % 7) + "é" * (i % 3) for i in range(40)]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n\n\n".join(DOCS))
    return path


def config(tmp_path, corpus, **kw):
    return DataConfig(corpus=str(corpus), cache_dir=str(tmp_path / "cache"), **kw)


def decode_bytes(ids: np.ndarray) -> str:
    return bytes(ids[ids != 256].astype(np.uint8)).decode()


def test_streams_are_the_documents_split_without_overlap(tmp_path, corpus):
    ds = load_dataset(config(tmp_path, corpus, val_fraction=0.2, split_seed=1), progress=False)
    assert ds.train.dtype == np.uint16 and ds.vocab_size == 257 and isinstance(ds.train, np.memmap)
    train = [decode_bytes(d) for d in np.split(ds.train, np.flatnonzero(ds.train == 256) + 1)[:-1]]
    val = [decode_bytes(d) for d in np.split(ds.val, np.flatnonzero(ds.val == 256) + 1)[:-1]]
    assert ds.train[-1] == 256 and ds.val[-1] == 256
    assert len(val) == 8 and len(train) == 32
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(DOCS)
    assert train == [d for d in DOCS if d in train]  # corpus order kept inside a split
    expected_tokens = sum(len(d.encode()) + 1 for d in DOCS)
    assert len(ds.train) + len(ds.val) == expected_tokens
    assert (ds.info.train_documents, ds.info.val_documents) == (32, 8)
    assert ds.info.bytes == sum(len(d.encode()) for d in DOCS)


def test_cache_is_reused_and_keyed_by_content(tmp_path, corpus, monkeypatch):
    first = load_dataset(config(tmp_path, corpus), progress=False)

    def forbidden(self, texts):
        raise AssertionError("re-tokenized although the cache holds this corpus")

    monkeypatch.setattr(ByteTokenizer, "encode_arrays", forbidden)
    again = load_dataset(config(tmp_path, corpus), progress=False)
    assert again.fingerprint == first.fingerprint
    assert np.array_equal(again.train, first.train) and np.array_equal(again.val, first.val)

    corpus.write_text(corpus.read_text().replace("Document 3", "Document three"))
    with pytest.raises(AssertionError, match="re-tokenized"):
        load_dataset(config(tmp_path, corpus), progress=False)
    monkeypatch.undo()
    changed = load_dataset(config(tmp_path, corpus), progress=False)
    assert changed.fingerprint != first.fingerprint
    others = {
        load_dataset(config(tmp_path, corpus, **kw), progress=False).fingerprint
        for kw in [{"split_seed": 1}, {"val_fraction": 0.1}, {"max_bytes": 300}]
    }
    assert len(others | {changed.fingerprint}) == 4
    (entry,) = {p.name for p in (tmp_path / "cache" / "tokens").iterdir()} - others - {first.fingerprint}
    assert entry == changed.fingerprint and not list((tmp_path / "cache" / "tokens").glob(".tmp-*"))


def test_failed_tokenization_leaves_no_cache(tmp_path, corpus, monkeypatch):
    calls = []

    def fails_late(self, texts):
        calls.append(len(texts))
        raise KeyboardInterrupt

    monkeypatch.setattr(ByteTokenizer, "encode_arrays", fails_late)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(config(tmp_path, corpus), progress=False)
    assert calls and list((tmp_path / "cache" / "tokens").iterdir()) == []


def test_killed_process_leaves_no_cache_and_its_temporary_is_cleaned(tmp_path, corpus):
    """SIGKILL mid-write: no cache entry; the next load removes the dead process's temporary and succeeds."""
    script = (
        "import os, signal\n"
        "from scaling.data import DataConfig, load_dataset\n"
        "from scaling.data.tokenizer import ByteTokenizer\n"
        "original = ByteTokenizer.encode_arrays\n"
        "def die(self, texts):\n"
        "    original(self, texts)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "ByteTokenizer.encode_arrays = die\n"
        f"cfg = DataConfig(corpus={str(corpus)!r}, cache_dir={str(tmp_path / 'cache')!r})\n"
        "load_dataset(cfg, progress=False)\n"
    )
    env = os.environ | {"PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-c", script], check=False, env=env)
    assert result.returncode == -9
    tokens = tmp_path / "cache" / "tokens"
    (leftover,) = list(tokens.iterdir())
    assert leftover.name.startswith(".tmp-")
    ds = load_dataset(config(tmp_path, corpus), progress=False)
    assert [p.name for p in tokens.iterdir()] == [ds.fingerprint]


def test_bad_corpora(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n\n\n\n\n")
    with pytest.raises(UserError, match=r"empty\.txt is empty: its 1 file\(s\) hold no text"):
        load_dataset(config(tmp_path, empty), progress=False)
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(config(tmp_path, tmp_path / "nowhere"), progress=False)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("one line only")
    with pytest.raises(UserError, match="has 1 document"):
        load_dataset(config(tmp_path, tiny), progress=False)


def test_gpt2_cut_dataset_matches_direct_encoding(tmp_path, corpus, gpt2_available):
    ds = load_dataset(config(tmp_path, corpus, encoding="gpt2:8192"), progress=False)
    assert isinstance(ds.tokenizer, TiktokenTokenizer) and ds.vocab_size == 8192
    assert ds.train.max() == 8191 and ds.train.dtype == np.uint16
    train_docs = ds.tokenizer.decode(ds.train).split("<|endoftext|>")[:-1]
    val_docs = ds.tokenizer.decode(ds.val).split("<|endoftext|>")[:-1]
    assert sorted(train_docs + val_docs) == sorted(DOCS)
    expected = [t for d in DOCS if d in train_docs for t in [*ds.tokenizer.encode(d), 8191]]
    assert ds.train.tolist() == expected


def test_stdlib_capped(tmp_path):
    ds = load_dataset(DataConfig(max_bytes=200_000, cache_dir=str(tmp_path)), progress=False)
    assert 199_000 < ds.info.bytes <= 200_000 and ds.info.corpus == "stdlib"
    assert ds.info.train_documents + ds.info.val_documents > 2
    assert len(ds.train) + len(ds.val) == ds.info.bytes + ds.info.train_documents + ds.info.val_documents
