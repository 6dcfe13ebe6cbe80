"""Fine-tuning: the loss is task CE + lambda x LM CE (checked against a direct computation, and lambda = 0
is pure supervised through the gradient); task files; an end-to-end run saved and reloadable."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from scaling.cli import main
from scaling.data import get_tokenizer
from scaling.errors import UserError
from scaling.use.finetune import (
    FinetuneConfig,
    encode_examples,
    finetune,
    init_head,
    load_task_config,
    losses,
)
from scaling.use.generate import load_run
from scaling.use.tasks import AuthorTaskConfig, author_task, jsonl_task, read_books_index, split_books
from tests.use.helpers import GUTENBERG, TINY, random_params

TEXTS = ["the cat sat", "a dog ran far away", "x", "the end of it all"]
LENGTHS = [12, 12, 2, 12]


def _batch():
    tokens_BxT, lengths_B = encode_examples(TEXTS, get_tokenizer("bytes"), max_len=12)
    return jnp.asarray(tokens_BxT), jnp.asarray(lengths_B), jnp.asarray([0, 1, 2, 1])


def _direct_losses(graphdef, state, tokens_BxT, lengths_B, labels_B):
    """Task and LM cross-entropy written out row by row (the model is causal, so the padding after a
    row's last token does not change its hidden states)."""
    model = nnx.merge(graphdef, state["gpt"])
    h_BxTxD = model.hidden(tokens_BxT)
    logp_BxTxV = jax.nn.log_softmax(model.logits(h_BxTxD))
    task, lm_terms = [], []
    for b, n in enumerate(LENGTHS):
        class_logits = h_BxTxD[b, n - 1] @ state["head"]["W_DxC"] + state["head"]["b_C"]
        task.append(-jax.nn.log_softmax(class_logits)[labels_B[b]])
        lm_terms += [-logp_BxTxV[b, t, tokens_BxT[b, t + 1]] for t in range(n - 1)]
    return jnp.mean(jnp.stack(task)), jnp.mean(jnp.stack(lm_terms))


def test_examples_end_with_end_of_text_and_are_cut():
    tokens_BxT, lengths_B = encode_examples(["abc", "z" * 40], get_tokenizer("bytes"), max_len=8)
    assert lengths_B.tolist() == [4, 8]
    assert tokens_BxT[0].tolist() == [97, 98, 99, 256, 256, 256, 256, 256]
    assert tokens_BxT[1, -1] == 256 and (tokens_BxT[1, :-1] == ord("z")).all()


@pytest.mark.parametrize("lm_weight", [0.0, 0.5])
def test_loss_is_task_plus_lambda_lm_and_lambda_zero_is_pure_supervised(lm_weight):
    graphdef, params = random_params(TINY, seed=2, std=0.1)
    state = {"gpt": params, "head": init_head(TINY.D, 3, seed=0)}
    batch = _batch()
    assert batch[1].tolist() == LENGTHS
    loss, parts = jax.jit(losses, static_argnums=(0, 5))(graphdef, state, *batch, lm_weight)
    task, lm = jax.jit(_direct_losses, static_argnums=0)(graphdef, state, *batch)
    np.testing.assert_allclose(parts["task_loss"], task, rtol=1e-5)
    np.testing.assert_allclose(loss, task + lm_weight * lm, rtol=1e-5)
    if lm_weight:
        np.testing.assert_allclose(parts["lm_loss"], lm, rtol=1e-5)
        return
    grads = jax.jit(jax.grad(lambda s: losses(graphdef, s, *batch, 0.0)[0]))(state)
    task_grads = jax.jit(jax.grad(lambda s: _direct_losses(graphdef, s, *batch)[0]))(state)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(task_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_task_errors(tmp_path):
    missing = _write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}])
    with pytest.raises(UserError, match=r"m.jsonl:2: the \"label\".*missing"):
        jsonl_task(missing, 0.2, 0)
    one = _write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": 1}] * 5)
    with pytest.raises(UserError, match="at least 2 distinct labels"):
        jsonl_task(one, 0.2, 0)
    with pytest.raises(UserError, match="does not exist"):
        jsonl_task(tmp_path / "nope.jsonl", 0.2, 0)


def test_task_yaml_needs_exactly_one_source(tmp_path):
    (tmp_path / "t.yaml").write_text("name: t\nsteps: 3\n")
    with pytest.raises(UserError, match="exactly one of"):
        load_task_config(tmp_path / "t.yaml")


def test_author_task_without_the_corpus_is_a_clear_error(tmp_path):
    cfg = AuthorTaskConfig(data_dir=str(tmp_path / "absent"), authors=("A", "B"))
    with pytest.raises(UserError, match="needs the Gutenberg corpus"):
        author_task(cfg)


@pytest.mark.shared_data
def test_author_task_tests_on_unseen_books():
    if not GUTENBERG.is_dir():
        pytest.skip(f"needs the shared Gutenberg corpus at {GUTENBERG}")
    cfg = load_task_config("experiments/author_task.yaml").authors
    train_books, test_books = split_books(read_books_index(GUTENBERG), cfg)
    assert not {b.path for b in train_books} & {b.path for b in test_books}
    assert sorted({b.author for b in test_books}) == sorted(cfg.authors)
    small = dataclasses.replace(cfg, train_passages_per_author=5, test_passages_per_author=3)
    data = author_task(small)
    assert np.bincount(data.test_labels).tolist() == [3] * len(cfg.authors)
    assert set(data.train_texts).isdisjoint(data.test_texts)


def test_finetune_end_to_end_saves_a_loadable_model(tiny_run, tmp_path):
    rows = [{"text": t * 3, "label": t[0]} for t in ("aaa", "bbb") for _ in range(10)]
    task_file = _write_jsonl(tmp_path / "task.jsonl", rows)
    cfg = FinetuneConfig(name="ab", jsonl=str(task_file), steps=30, batch_size=8, lr=3e-3, warmup_steps=2)
    summary = finetune(tiny_run[0], cfg, tmp_path / "out", progress=False)
    assert summary["test_accuracy"] == 1.0 and summary["labels"] == ["a", "b"]
    assert summary["history"][-1]["task_loss"] < summary["history"][0]["task_loss"]
    assert json.loads((tmp_path / "out" / "finetune_summary.json").read_text())["test_examples"] == 4
    reloaded = load_run(tmp_path / "out")
    assert reloaded.step == 30
    with pytest.raises(UserError, match="already holds a fine-tuned model"):
        finetune(tiny_run[0], cfg, tmp_path / "out", progress=False)


def test_cli_reports_missing_labels_in_one_line(tiny_run, tmp_path, capsys):
    task_file = _write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}])
    (tmp_path / "t.yaml").write_text(f"name: t\njsonl: {task_file}\n")
    assert main(["finetune", str(tiny_run[0]), str(tmp_path / "t.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and 'the "label"' in err
