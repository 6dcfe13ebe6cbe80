import numpy as np
import pytest
import tiktoken

from scaling.data import tokenizer as tokenizer_module
from scaling.data.token_file import token_dtype
from scaling.data.tokenizer import get_tokenizer
from scaling.errors import UserError

TEXT = "Héllo, wörld! 日本語 <|endoftext|> tabs\tand\nnewlines 🙂"
PLAIN = "The cat sat on the mat and the dog ran to the house.\nIt was a good day for a walk in the park."


def test_bytes_round_trip_and_eot():
    tok = get_tokenizer("bytes")
    assert (tok.vocab_size, tok.eot_id) == (257, 256)
    ids = tok.encode(TEXT)
    assert ids == list(TEXT.encode("utf-8"))
    assert tok.decode(ids) == TEXT
    assert tok.decode([*tok.encode("a"), tok.eot_id, *tok.encode("b")]) == "a<|endoftext|>b"
    (array,) = tok.encode_arrays([TEXT])
    assert array.tolist() == ids


def test_unknown_encoding_lists_valid_ones():
    with pytest.raises(UserError, match=r"unknown encoding 'gpt3'.*bytes, gpt2, r50k_base, cl100k_base"):
        get_tokenizer("gpt3")
    with pytest.raises(UserError, match="below 257"):
        get_tokenizer("gpt2:100")


def test_cut_larger_than_vocabulary(gpt2_available):
    with pytest.raises(UserError, match=r"K=60000 is larger than gpt2's vocabulary \(50256 BPE tokens"):
        get_tokenizer("gpt2:60000")


def test_gpt2_matches_tiktoken(gpt2_available):
    tok = get_tokenizer("gpt2")
    assert (tok.vocab_size, tok.eot_id) == (50257, 50256)
    assert tok.encode("hello world") == [31373, 995]
    reference = tiktoken.get_encoding("gpt2").encode(TEXT, disallowed_special=())
    assert tok.encode(TEXT) == reference
    assert tok.encode_arrays([TEXT, PLAIN])[0].tolist() == reference
    assert tok.decode(reference) == TEXT


def test_gpt2_cut_to_8192(gpt2_available):
    cut = get_tokenizer("gpt2:8192")
    full = tiktoken.get_encoding("gpt2")
    assert (cut.vocab_size, cut.eot_id, token_dtype(cut.vocab_size)) == (8192, 8191, np.uint16)
    ids = cut.encode(TEXT)
    assert max(ids) < 8191
    assert cut.decode(ids) == TEXT
    assert len(ids) > len(full.encode_ordinary(TEXT))  # rare pieces fall back to shorter tokens
    # On text whose full encoding only uses ranks below the cut, the cut encoding is identical.
    reference = full.encode_ordinary(PLAIN)
    assert max(reference) < 8191
    assert cut.encode(PLAIN) == reference
    assert cut.decode([*cut.encode("a"), cut.eot_id]) == "a<|endoftext|>"


def test_cl100k_needs_uint32(gpt2_available):
    tok = get_tokenizer("cl100k_base")
    assert tok.encode("hello world") == [15339, 1917]
    assert token_dtype(tok.vocab_size) == np.uint32
    assert token_dtype(get_tokenizer("cl100k_base:65536").vocab_size) == np.uint16


def test_unloadable_encoding_is_a_user_error(monkeypatch):
    def offline(name):
        raise ConnectionError(f"cannot reach the server for {name}\nsecond line")

    monkeypatch.setattr(tokenizer_module.tiktoken, "get_encoding", offline)
    get_tokenizer.cache_clear()
    with pytest.raises(UserError, match=r"cannot load the o200k_base encoding.*TIKTOKEN_CACHE_DIR") as err:
        get_tokenizer("o200k_base:50000")
    assert "\n" not in str(err.value)


def test_o200k_loads_or_explains(tmp_path, monkeypatch):
    """The real o200k path: without its file and internet it must fail with the clear message."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    get_tokenizer.cache_clear()
    tiktoken.registry.ENCODINGS.pop("o200k_base", None)
    try:
        tok = get_tokenizer("o200k_base")
    except UserError as err:
        assert "cannot load the o200k_base encoding" in str(err)
    else:
        assert tok.vocab_size > 1 << 16 and token_dtype(tok.vocab_size) == np.uint32
    finally:
        get_tokenizer.cache_clear()
