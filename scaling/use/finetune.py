"""GPT-1-style supervised fine-tuning: a new linear head W_y on the last token's final hidden state.

Each example is its text's tokens (cut to max_len - 1) followed by end-of-text, GPT-1's "extract" token;
the head reads the hidden state there. Loss = task cross-entropy + lm_weight x the language-modelling
cross-entropy of the same examples (Radford et al. 2018 used lm_weight = 0.5; 0 is pure supervised).
`init: random` trains the same model and head from random initialisation: the baseline that shows what
pre-training bought. Only the held-out split's accuracy is reported; nothing is selected on it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from scaling.config_io import load_config, to_dict
from scaling.console import track
from scaling.data import Tokenizer
from scaling.errors import UserError
from scaling.model.decoder import GPT
from scaling.train.checkpoint import CheckpointStore
from scaling.train.loss import cross_entropy_sum
from scaling.train.optimizer import OptimConfig, learning_rates, make_optimizer
from scaling.train.run_dir import RunDir, atomic_write_text
from scaling.train.step import gradient_step
from scaling.use.generate import LoadedRun, load_run
from scaling.use.tasks import AuthorTaskConfig, TaskData, author_task, jsonl_task

SUMMARY_FILE = "finetune_summary.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """A TASK.yaml: the data (exactly one of `jsonl` or `authors`) and the fine-tuning recipe.

    max_len 0 means the model's context T. lm_weight is GPT-1's lambda.
    """

    name: str = "task"
    jsonl: str = ""
    test_fraction: float = 0.2
    authors: AuthorTaskConfig | None = None
    init: Literal["pretrained", "random"] = "pretrained"
    max_len: int = 0
    steps: int = 200
    batch_size: int = 32
    lr: float = 3e-4
    warmup_steps: int = 20
    weight_decay: float = 0.01
    lm_weight: float = 0.5
    eval_batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if bool(self.jsonl) == (self.authors is not None):
            raise ValueError("a task needs exactly one of `jsonl: FILE` or an `authors:` section")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.max_len < 0 or self.max_len == 1:
            raise ValueError(f"max_len must be 0 (the model context) or >= 2, got {self.max_len}")
        for name in ("steps", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {self.lm_weight}")


def load_task_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> FinetuneConfig:
    return load_config(FinetuneConfig, path, overrides)


def task_data(cfg: FinetuneConfig) -> TaskData:
    if cfg.authors is not None:
        return author_task(cfg.authors)
    return jsonl_task(cfg.jsonl, cfg.test_fraction, cfg.seed)


def encode_examples(texts: list[str], tokenizer: Tokenizer, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens [N, max_len] (each text cut to max_len - 1 tokens, then end-of-text, then end-of-text
    padding) and lengths [N] counting the closing end-of-text."""
    tokens_NxT = np.full((len(texts), max_len), tokenizer.eot_id, np.int32)
    lengths_N = np.zeros(len(texts), np.int32)
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text)[: max_len - 1]
        tokens_NxT[i, : len(ids)] = ids
        lengths_N[i] = len(ids) + 1
    return tokens_NxT, lengths_N


def init_head(D: int, C: int, seed: int) -> dict[str, jax.Array]:
    """W_y [D, C] with the model's init scale, zero bias."""
    W_DxC = 0.02 * jax.random.normal(jax.random.key(seed), (D, C), jnp.float32)
    return {"W_DxC": W_DxC, "b_C": jnp.zeros((C,), jnp.float32)}


def task_logits(h_BxTxD: jax.Array, lengths_B: jax.Array, head: dict) -> jax.Array:
    """Class logits [B, C] from the hidden state of each row's last real token."""
    last_BxD = jnp.take_along_axis(h_BxTxD, (lengths_B - 1)[:, None, None], axis=1)[:, 0]
    return last_BxD.astype(jnp.float32) @ head["W_DxC"] + head["b_C"]


def losses(
    graphdef: Any,
    state: dict,
    tokens_BxT: jax.Array,
    lengths_B: jax.Array,
    labels_B: jax.Array,
    lm_weight: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(task CE + lm_weight x LM CE, parts). The LM term is the token mean over each row's real tokens."""
    model: GPT = nnx.merge(graphdef, state["gpt"])
    h_BxTxD = model.hidden(tokens_BxT)
    logits_BxC = task_logits(h_BxTxD, lengths_B, state["head"])
    task_sum, count = cross_entropy_sum(logits_BxC[:, None], labels_B[:, None])
    task = task_sum / count
    parts = {"task_loss": task, "correct": jnp.sum(jnp.argmax(logits_BxC, -1) == labels_B)}
    if lm_weight == 0:
        return task, parts
    targets_mask_BxT = jnp.arange(tokens_BxT.shape[1] - 1)[None, :] < (lengths_B - 1)[:, None]
    lm_sum, lm_count = cross_entropy_sum(model.logits(h_BxTxD[:, :-1]), tokens_BxT[:, 1:], targets_mask_BxT)
    lm = lm_sum / jnp.maximum(lm_count, 1.0)
    return task + lm_weight * lm, {**parts, "lm_loss": lm}


def make_steps(graphdef: Any, tx: optax.GradientTransformation, lm_weight: float):
    """(train_step, eval_step), jitted. train_step is the trainer's `gradient_step` with the task loss
    (one micro-batch: `batch` leaves carry a leading axis of 1); it donates and returns the state and
    optimizer state."""

    def task_loss(state, batch, key):
        loss, parts = losses(graphdef, state, *batch, lm_weight)
        return loss, jnp.ones((), jnp.float32), parts

    def eval_step(state, tokens_BxT, lengths_B):
        model: GPT = nnx.merge(graphdef, state["gpt"])
        logits_BxC = task_logits(model.hidden(tokens_BxT), lengths_B, state["head"])
        return jax.nn.log_softmax(logits_BxC, axis=-1)

    return jax.jit(gradient_step(task_loss, tx), donate_argnums=(0, 1)), jax.jit(eval_step)


def evaluate(eval_step, state, tokens_NxT, lengths_N, labels_N, batch: int) -> dict[str, float]:
    """Accuracy and mean task cross-entropy over the whole split (the last batch padded, then cut)."""
    logprobs = []
    for start in range(0, len(labels_N), batch):
        rows = np.arange(start, start + batch) % len(labels_N)
        logprobs.append(np.asarray(eval_step(state, tokens_NxT[rows], lengths_N[rows])))
    logprobs_NxC = np.concatenate(logprobs)[: len(labels_N)]
    return {
        "accuracy": float(np.mean(logprobs_NxC.argmax(-1) == labels_N)),
        "task_loss": float(-np.mean(logprobs_NxC[np.arange(len(labels_N)), labels_N])),
    }


def _initial_state(run: LoadedRun, cfg: FinetuneConfig, num_classes: int) -> dict:
    model_cfg = run.config.model
    head = init_head(model_cfg.D, num_classes, cfg.seed)
    if cfg.init == "pretrained":
        return {"gpt": run.params, "head": head}
    shardings = jax.tree.map(lambda leaf: leaf.sharding, run.params)
    fresh = jax.jit(
        lambda: nnx.split(GPT(model_cfg, nnx.Rngs(cfg.seed)), nnx.Param)[1], out_shardings=shardings
    )
    return {"gpt": fresh(), "head": head}


def _output_dir(run_dir: str | Path, cfg: FinetuneConfig, out: str | Path | None) -> RunDir:
    target = RunDir(Path(out) if out else Path(run_dir) / "finetune" / f"{cfg.name}-{cfg.init}")
    if (target.path / SUMMARY_FILE).exists():
        raise UserError(f"{target.path} already holds a fine-tuned model; choose another --out directory")
    return target


def finetune(
    run_dir: str | Path, cfg: FinetuneConfig, out: str | Path | None = None, progress: bool = True
) -> dict:
    """Fine-tune the run's latest checkpoint on the task; save the model and return the summary it wrote."""
    started = time.perf_counter()
    target = _output_dir(run_dir, cfg, out)
    data = task_data(cfg)  # bad task files fail before any restore or compile
    run = load_run(run_dir)
    max_len = cfg.max_len or run.config.model.T
    if max_len > run.config.model.T:
        raise UserError(f"max_len={max_len} exceeds the model's context T={run.config.model.T}")
    train_tokens, train_lengths = encode_examples(data.train_texts, run.tokenizer, max_len)
    test_tokens, test_lengths = encode_examples(data.test_texts, run.tokenizer, max_len)

    optim = OptimConfig(
        lr=cfg.lr, schedule="cosine", warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay
    )
    tx, lrs = make_optimizer(optim), learning_rates(optim, cfg.steps)
    state = _initial_state(run, cfg, len(data.label_names))
    opt_state = tx.init(state)
    train_step, eval_step = make_steps(run.graphdef, tx, cfg.lm_weight)
    rng = np.random.default_rng(cfg.seed)
    epochs = cfg.steps * cfg.batch_size // len(train_lengths) + 1
    order = np.concatenate([rng.permutation(len(train_lengths)) for _ in range(epochs)])
    history, window = [], []
    for step in track(
        range(cfg.steps), total=cfg.steps, disable=not progress, desc=f"finetune {cfg.name}", unit="step"
    ):
        rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        batch = (train_tokens[rows][None], train_lengths[rows][None], data.train_labels[rows][None])
        state, opt_state, metrics = train_step(state, opt_state, batch, step, lrs[step])
        window.append({k: metrics[k] for k in ("loss", "task_loss", "correct", "lm_loss") if k in metrics})
        if (step + 1) % 20 == 0 or step + 1 == cfg.steps:
            means = {k: float(np.mean([jax.device_get(m[k]) for m in window])) for k in window[0]}
            means["train_accuracy"] = means.pop("correct") / len(rows)
            history.append({"step": step + 1, **means})
            window = []
    test = evaluate(eval_step, state, test_tokens, test_lengths, data.test_labels, cfg.eval_batch_size)
    summary = {
        "task": cfg.name,
        "init": cfg.init,
        "run_dir": str(run_dir),
        "pretrained_step": run.step,
        "labels": list(data.label_names),
        "train_examples": len(data.train_labels),
        "test_examples": len(data.test_labels),
        "test_accuracy": test["accuracy"],
        "test_task_loss": test["task_loss"],
        "majority_accuracy": float(np.bincount(data.test_labels).max() / len(data.test_labels)),
        "final": history[-1],
        "history": history,
        "lm_weight": cfg.lm_weight,
        "max_len": max_len,
        "wall_seconds": time.perf_counter() - started,
        "notes": data.notes,
        "out_dir": str(target.path),
    }
    _save(target, run, cfg, state, summary)
    return summary


def _save(target: RunDir, run: LoadedRun, cfg: FinetuneConfig, state: dict, summary: dict) -> None:
    """A run directory `scaling generate` can read (its config.yaml, the fine-tuned parameters under
    `params`), plus the head, the task config and the summary."""
    target.claim(to_dict(run.config))
    store = CheckpointStore(target.checkpoint_dir, keep=1)
    meta = {
        "step": cfg.steps,
        "encoding": run.tokenizer.name,
        "vocab_size": run.tokenizer.vocab_size,
        "task": cfg.name,
        "labels": summary["labels"],
    }
    tree = {"params": state["gpt"], "head": state["head"]}
    store.save_tree(cfg.steps, tree, meta)
    store.close()
    atomic_write_text(target.path / "task.json", json.dumps(to_dict(cfg), indent=2) + "\n")
    atomic_write_text(target.path / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
