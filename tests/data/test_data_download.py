import hashlib
from pathlib import Path

import pytest

from scaling.data import DataConfig, corpora, load_dataset
from scaling.data.corpora import RemoteText
from scaling.data.download import download
from scaling.errors import UserError

SHARED_SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared/data/tinyshakespeare/input.txt"
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 400


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "remote" / "input.txt"
    path.parent.mkdir()
    path.write_text(TEXT)
    return path, hashlib.sha256(TEXT.encode()).hexdigest()


def test_right_hash_downloads_once(tmp_path, source):
    path, sha = source
    dest = tmp_path / "cache" / "input.txt"
    assert download(path.as_uri(), sha, dest, progress=False) == dest
    assert dest.read_text() == TEXT
    path.unlink()  # a second call must not fetch again
    assert download(path.as_uri(), sha, dest, progress=False).read_text() == TEXT
    assert [p.name for p in dest.parent.iterdir()] == ["input.txt"]


def test_wrong_hash_keeps_nothing(tmp_path, source):
    path, _ = source
    dest = tmp_path / "cache" / "input.txt"
    with pytest.raises(UserError, match=r"sha256 is [0-9a-f]{64}, expected 00+; the download was discarded"):
        download(path.as_uri(), "0" * 64, dest, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_unreachable_url(tmp_path):
    with pytest.raises(UserError, match=r"could not download .*pass a local copy's path"):
        download((tmp_path / "absent.txt").as_uri(), "0" * 64, tmp_path / "out.txt", progress=False)
    assert not (tmp_path / "out.txt").exists()


def test_unpinned_hash_is_reported(tmp_path, source, capsys):
    path, sha = source
    download(path.as_uri(), None, tmp_path / "out.txt", progress=False)
    assert sha in capsys.readouterr().err


def test_builtin_tinyshakespeare_downloads_and_chunks(tmp_path, source, monkeypatch):
    path, sha = source
    monkeypatch.setitem(
        corpora.REMOTE_CORPORA, "tinyshakespeare", RemoteText(path.as_uri(), sha, "input.txt")
    )
    ds = load_dataset(DataConfig(corpus="tinyshakespeare", cache_dir=str(tmp_path / "c")), progress=False)
    assert (tmp_path / "c" / "corpora" / "tinyshakespeare" / "input.txt").read_text() == TEXT
    assert ds.info.train_documents + ds.info.val_documents >= 19  # one text cut into ~20 line chunks
    assert ds.info.val_documents == 1 and len(ds.val) > 1000


def test_builtin_with_wrong_hash_fails_cleanly(tmp_path, source, monkeypatch):
    path, _ = source
    monkeypatch.setitem(corpora.REMOTE_CORPORA, "tinystories", RemoteText(path.as_uri(), "f" * 64, "t.txt"))
    with pytest.raises(UserError, match="sha256"):
        load_dataset(DataConfig(corpus="tinystories", cache_dir=str(tmp_path / "c")), progress=False)
    assert list((tmp_path / "c" / "corpora" / "tinystories").iterdir()) == []


def test_pinned_tinyshakespeare_hash_matches_the_shared_copy():
    copy = SHARED_SHAKESPEARE
    if not copy.is_file():
        pytest.skip(f"{copy} not present (needs ../shared)")
    assert corpora.REMOTE_CORPORA["tinyshakespeare"].sha256 == hashlib.sha256(copy.read_bytes()).hexdigest()
