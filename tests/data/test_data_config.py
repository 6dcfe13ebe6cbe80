from pathlib import Path

import pytest

from scaling.config_io import from_dict
from scaling.data.config import DataConfig, cache_root, parse_encoding
from scaling.errors import UserError


def test_defaults_and_encoding_forms():
    cfg = DataConfig()
    assert (cfg.corpus, cfg.encoding, cfg.val_fraction, cfg.max_bytes) == ("stdlib", "bytes", 0.05, None)
    assert parse_encoding("gpt2:8192") == ("gpt2", 8192)
    assert parse_encoding("o200k_base") == ("o200k_base", None)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"encoding": "gpt5"}, "unknown encoding 'gpt5'; valid encodings: bytes, gpt2"),
        ({"encoding": "bytes:300"}, "unknown encoding 'bytes:300'"),
        ({"encoding": "gpt2:12"}, "K=12 is below 257"),
        ({"val_fraction": 0}, r"val_fraction must be a number in \(0, 1\)"),
        ({"val_fraction": 1.5}, r"val_fraction must be a number in \(0, 1\)"),
        ({"split_seed": -1}, "split_seed must be a non-negative integer"),
        ({"max_bytes": 0}, "max_bytes must be a positive integer"),
        ({"corpus": " "}, "corpus must be one of stdlib, tinyshakespeare, tinystories or a path"),
        ({"vocab": 3}, "unknown key vocab; valid keys: corpus, encoding"),
    ],
)
def test_bad_values_are_user_errors(mapping, message):
    with pytest.raises(UserError, match=message):
        from_dict(DataConfig, mapping, "data")


def test_yaml_values_become_a_config():
    cfg = from_dict(DataConfig, {"corpus": "x.txt", "encoding": "gpt2:8192", "max_bytes": 1000})
    assert cfg == DataConfig(corpus="x.txt", encoding="gpt2:8192", max_bytes=1000)


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SCALING_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert cache_root("") == tmp_path / "env"
    monkeypatch.delenv("SCALING_CACHE_DIR")
    assert cache_root("") == Path.home() / ".cache" / "scaling"
