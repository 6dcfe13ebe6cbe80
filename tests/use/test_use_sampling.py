"""Decoding strategies: greedy limits, the nucleus against an independent numpy computation, seeds."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from scaling.use.sampling import SamplingConfig, greedy, sample, top_p_mask


def _logits(seed: int, B: int = 16, V: int = 50, scale: float = 3.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(B, V))).astype(np.float32)


def test_temperature_zero_and_top_k_one_equal_greedy():
    logits_BxV = _logits(0)
    expected_B = np.argmax(logits_BxV, axis=-1)
    np.testing.assert_array_equal(greedy(logits_BxV), expected_B)
    for seed in range(5):
        key = jax.random.key(seed)
        np.testing.assert_array_equal(sample(key, logits_BxV, SamplingConfig(temperature=0.0)), expected_B)
        top1 = SamplingConfig(temperature=1.5, top_k=1)
        np.testing.assert_array_equal(sample(key, logits_BxV, top1), expected_B)


def _numpy_nucleus(logits_V: np.ndarray, p: float) -> set[int]:
    """Smallest set of most probable tokens whose total probability reaches p (float64)."""
    probs = np.exp(logits_V.astype(np.float64) - logits_V.max())
    probs /= probs.sum()
    nucleus, mass = set(), 0.0
    for token in np.argsort(-probs, kind="stable"):
        nucleus.add(int(token))
        mass += probs[token]
        if mass >= p:
            break
    return nucleus


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_top_p_never_emits_a_token_outside_the_nucleus(p):
    logits_BxV = _logits(1, B=64)
    nuclei = [_numpy_nucleus(row, p) for row in logits_BxV]
    mask_BxV = np.asarray(top_p_mask(logits_BxV, p))
    assert [set(np.flatnonzero(row).tolist()) for row in mask_BxV] == nuclei
    draw = jax.jit(lambda key: sample(key, logits_BxV, SamplingConfig(temperature=1.0, top_p=p)))
    seen = [set() for _ in nuclei]
    for seed in range(100):
        for row, token in enumerate(np.asarray(draw(jax.random.key(seed)))):
            assert int(token) in nuclei[row]
            seen[row].add(int(token))
    assert max(len(s) for s in seen) > 1 or p < 0.5  # it really samples, not always the top token


def test_fixed_seed_gives_identical_samples_and_other_seeds_differ():
    logits_BxV = _logits(2)
    cfg = SamplingConfig(temperature=1.0, top_k=20, top_p=0.95)
    a = sample(jax.random.key(7), logits_BxV, cfg)
    b = sample(jax.random.key(7), logits_BxV, cfg)
    c = sample(jax.random.key(8), logits_BxV, cfg)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_temperature_sharpens_towards_greedy():
    logits_BxV = _logits(3, B=256, scale=1.0)
    greedy_B = np.argmax(logits_BxV, axis=-1)
    agree = {}
    for t in (2.0, 0.01):
        draws = np.asarray(sample(jax.random.key(0), logits_BxV, SamplingConfig(temperature=t)))
        agree[t] = np.mean(draws == greedy_B)
    assert agree[0.01] > 0.9 > 0.5 > agree[2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_p": 0.0}, "top-p must be in"),
        ({"top_p": 1.5}, "top-p must be in"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": -2}, "top-k"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**kwargs)
