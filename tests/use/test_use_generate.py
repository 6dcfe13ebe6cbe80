"""Generation from a saved run: cached greedy decoding equals re-running the full model on the prefix;
seeds; end-of-text; bad input gives one-line errors through the CLI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scaling.cli import main
from scaling.config_io import to_dict
from scaling.data import get_tokenizer
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import RunDir
from scaling.use.generate import completions, generate, generate_ids, load_run, max_new_tokens_that_fit
from scaling.use.sampling import SamplingConfig
from tests.helpers import run_scaling
from tests.use.helpers import TINY, random_params

PROMPT = [ord(c) for c in "Once"]


def test_restored_params_equal_saved(tiny_run):
    path, _, params = tiny_run
    run = load_run(path)
    assert run.step == 7 and run.tokenizer.name == "bytes" and run.config.model == TINY
    for saved, restored in zip(jax.tree.leaves(params), jax.tree.leaves(run.params), strict=True):
        np.testing.assert_array_equal(saved, restored)


def test_cached_greedy_equals_uncached_greedy(tiny_run):
    _, graphdef, params = tiny_run
    greedy = SamplingConfig(temperature=0.0)
    new = generate_ids(
        graphdef, params, PROMPT, max_new_tokens=10, sampling=greedy, num_samples=2, seed=0, eot_id=256
    )
    full = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))  # causal: padding after the prefix is inert
    tokens = list(PROMPT)
    for _ in range(10):
        padded = jnp.asarray([tokens + [0] * (TINY.T - len(tokens))])
        tokens.append(int(jnp.argmax(full(params, padded)[0, len(tokens) - 1])))
    np.testing.assert_array_equal(new, np.asarray([tokens[len(PROMPT) :]] * 2))


def test_seeded_sampling_is_reproducible_and_batched(tiny_run):
    _, graphdef, params = tiny_run
    cfg = SamplingConfig(temperature=1.0, top_k=50, top_p=0.9)

    def draw(seed):
        return generate_ids(
            graphdef, params, PROMPT, max_new_tokens=12, sampling=cfg, num_samples=3, seed=seed, eot_id=256
        )

    a, b, c = draw(1), draw(1), draw(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(row) for row in a}) == 3  # the batch rows are independent samples


def test_generation_stops_at_end_of_text():
    graphdef, params = random_params(TINY, seed=5)

    def force_eot(path, leaf):
        name = jax.tree_util.keystr(path)
        if "ln_f" in name:  # the final hidden state becomes all ones...
            return jnp.zeros_like(leaf) if "scale" in name else jnp.ones_like(leaf)
        if "kernel_DxV" in name:  # ...and end-of-text's output column dominates it
            return leaf.at[:, 256].set(100.0)
        return leaf

    params = jax.tree_util.tree_map_with_path(force_eot, params)
    sampling = SamplingConfig()
    new = generate_ids(
        graphdef, params, PROMPT, max_new_tokens=8, sampling=sampling, num_samples=2, seed=0, eot_id=256
    )
    assert (new == 256).all()
    ids = np.asarray([[104, 105, 256, 104], [104] * 4])
    assert completions(ids, get_tokenizer("bytes")) == ["hi", "hhhh"]


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_gives_one_line_errors(tiny_run, tmp_path, capsys):
    path = str(tiny_run[0])
    untrained = tmp_path / "untrained"
    RunDir(untrained).claim(to_dict(RunConfig(model=TINY)))
    assert "no checkpoint" in _one_line_error(["generate", str(untrained), "--prompt", "a"], capsys)
    (untrained / "checkpoints").mkdir()
    assert "no checkpoint" in _one_line_error(["generate", str(untrained), "--prompt", "a"], capsys)
    assert "no config.yaml" in _one_line_error(["generate", str(tmp_path), "--prompt", "a"], capsys)
    assert "prompt is empty" in _one_line_error(["generate", path, "--prompt", ""], capsys)
    too_long = "x" * TINY.T
    assert "context is T=24" in _one_line_error(["generate", path, "--prompt", too_long], capsys)
    for p in ("0", "1.5", "-0.1"):
        err = _one_line_error(["generate", path, "--prompt", "a", "--top-p", p], capsys)
        assert "top-p must be in (0, 1]" in err


def test_cli_prints_samples(tiny_run, capsys):
    argv = ["generate", str(tiny_run[0]), "--prompt", "ab", "--max-new-tokens", "5", "--num-samples", "2"]
    assert main([*argv, "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main([*argv, "--seed", "3"]) == 0
    assert capsys.readouterr().out == first
    assert first.count("--- sample") == 2


def test_max_new_tokens_is_cut_to_the_context(tiny_run):
    run = load_run(tiny_run[0])
    assert max_new_tokens_that_fit(TINY, 20) == TINY.T - 20 + 1
    texts = generate(run, "x" * 20, max_new_tokens=100, sampling=SamplingConfig(temperature=0.0))
    assert len(texts) == 1


def test_a_one_device_run_samples_the_same_on_eight_devices(tiny_run):
    """The checkpoint is restored onto an 8-device mesh (sharding table, partial restore) and decodes the
    same tokens as on one device: greedy, and seeded sampling with several samples."""
    path = str(tiny_run[0])
    greedy, sampled = ("--temperature", "0"), ("--num-samples", "2", "--seed", "5", "--top-k", "20")
    for flags, headers in ((greedy, 0), (sampled, 2)):
        argv = ("generate", path, "--prompt", "ab", "--max-new-tokens", "12", *flags)
        one, eight = run_scaling(*argv, devices=1).stdout, run_scaling(*argv, devices=8).stdout
        assert one.count("--- sample") == headers and one.count("ab") >= max(headers, 1)
        assert eight == one
