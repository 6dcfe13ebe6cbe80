"""Restore a run's model from its latest checkpoint and generate text with the key/value cache.

Only the parameters are restored (a partial orbax restore: the optimizer state is never read), onto a mesh
over whatever devices are present, so a model trained on 8 devices samples on a laptop. The whole
generation (prefill, then one cached position per new token until every sample has emitted end-of-text)
is one jitted function.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from scaling.config_io import from_dict
from scaling.data import Tokenizer, get_tokenizer
from scaling.errors import UserError
from scaling.model.config import ModelConfig
from scaling.model.decode import empty_cache, forward_cached
from scaling.model.decoder import GPT
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.train.checkpoint import CheckpointStore
from scaling.train.run_config import RunConfig
from scaling.train.run_dir import RunDir
from scaling.train.state import placed_params, relaid
from scaling.use.sampling import SamplingConfig, sample


@dataclass(frozen=True)
class LoadedRun:
    """A run's resolved config, its restored model (parameters placed on the current devices), tokenizer."""

    config: RunConfig
    step: int
    graphdef: Any
    params: Any
    tokenizer: Tokenizer

    @property
    def model(self) -> GPT:
        return nnx.merge(self.graphdef, self.params)


def restore_params(store: CheckpointStore, step: int, cfg: ModelConfig) -> tuple[Any, Any]:
    """(graphdef, params) at `step` in `cfg`'s block layout (whichever the checkpoint holds), laid out by
    the sharding table on a mesh of the present devices."""
    mesh = make_mesh(MeshConfig())
    graphdef, target = placed_params(cfg, mesh)
    _, saved = placed_params(cfg.replace(scan_layers=store.saved_layers(step) == "scanned"), mesh)
    return graphdef, relaid(store.restore_params(step, saved), target)


def load_run(run_path: str | Path) -> LoadedRun:
    """The latest checkpoint of the run directory `run_path`; UserError if there is none."""
    run = RunDir(run_path)
    config = from_dict(RunConfig, run.read_config())
    if not run.checkpoint_dir.is_dir():
        raise UserError(
            f"run directory {run.path} has no checkpoints/ folder; train it first (scaling train)"
        )
    store = CheckpointStore(run.checkpoint_dir, keep=1, read_only=True)
    step = store.latest_step()
    if step is None:
        raise UserError(f"run directory {run.path} has no checkpoint yet; train it first (scaling train)")
    meta = store.read_meta(step)
    graphdef, params = restore_params(store, step, config.model)
    tokenizer = get_tokenizer(meta.get("encoding", config.data.encoding))
    return LoadedRun(config, step, graphdef, params, tokenizer)


def max_new_tokens_that_fit(model_cfg: ModelConfig, prompt_len: int) -> int:
    """The last sampled token is never fed back, so P prompt + N new tokens need P + N - 1 <= T."""
    return model_cfg.T - prompt_len + 1


def check_prompt(prompt_ids: list[int], model_cfg: ModelConfig) -> None:
    if not prompt_ids:
        raise UserError("the prompt is empty; give at least one character with --prompt")
    if len(prompt_ids) >= model_cfg.T:
        raise UserError(
            f"the prompt is {len(prompt_ids)} tokens but the model's context is T={model_cfg.T}; "
            f"shorten it to at most {model_cfg.T - 1} tokens so there is room to generate"
        )


def generate_ids(
    graphdef: Any,
    params: Any,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    num_samples: int,
    seed: int,
    eot_id: int,
) -> np.ndarray:
    """New token ids [num_samples, max_new_tokens]; a row is end-of-text after its first one."""
    if max_new_tokens < 1 or num_samples < 1:
        raise UserError("--max-new-tokens and --num-samples must be >= 1")
    prompt_1xP = jnp.asarray([prompt_ids], jnp.int32)
    out = decode_loop(
        graphdef, params, prompt_1xP, jax.random.key(seed), max_new_tokens, sampling, num_samples, eot_id
    )
    return np.asarray(out)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def decode_loop(graphdef, params, prompt_1xP, key, N: int, sampling: SamplingConfig, M: int, eot: int):
    """M samples of N new tokens after the prompt: prefill, then a while loop of cached one-token steps
    that ends early once every sample has produced end-of-text."""
    model = nnx.merge(graphdef, params)
    P = prompt_1xP.shape[1]
    cache = empty_cache(model, M, P + N - 1)
    logits_MxPxV, cache = forward_cached(model, jnp.broadcast_to(prompt_1xP, (M, P)), cache, 0)
    token_M = sample(jax.random.fold_in(key, 0), logits_MxPxV[:, -1], sampling)
    out_MxN = jnp.full((M, N), eot, jnp.int32).at[:, 0].set(token_M)

    def unfinished(carry) -> jax.Array:
        i, _, _, _, done_M = carry
        return (i < N) & ~jnp.all(done_M)

    def step(carry):
        i, token_M, cache, out_MxN, done_M = carry
        logits_Mx1xV, cache = forward_cached(model, token_M[:, None], cache, P + i - 1)
        token_M = sample(jax.random.fold_in(key, i), logits_Mx1xV[:, 0], sampling)
        token_M = jnp.where(done_M, eot, token_M)
        out_MxN = jax.lax.dynamic_update_slice(out_MxN, token_M[:, None], (0, i))
        return i + 1, token_M, cache, out_MxN, done_M | (token_M == eot)

    carry = (jnp.int32(1), token_M, cache, out_MxN, token_M == eot)
    return jax.lax.while_loop(unfinished, step, carry)[3]


def completions(ids_MxN: np.ndarray, tokenizer: Tokenizer) -> list[str]:
    """Each sample's text up to (not including) its first end-of-text."""
    texts = []
    for row in ids_MxN:
        stop = np.flatnonzero(row == tokenizer.eot_id)
        texts.append(tokenizer.decode(row[: stop[0]] if stop.size else row))
    return texts


def generate(
    run: LoadedRun,
    prompt: str,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    num_samples: int = 1,
    seed: int = 0,
) -> list[str]:
    """Completions of `prompt`; max_new_tokens is cut to what the context allows."""
    prompt_ids = run.tokenizer.encode(prompt)
    check_prompt(prompt_ids, run.config.model)
    ids_MxN = generate_ids(
        run.graphdef,
        run.params,
        prompt_ids,
        max_new_tokens=min(max_new_tokens, max_new_tokens_that_fit(run.config.model, len(prompt_ids))),
        sampling=sampling,
        num_samples=num_samples,
        seed=seed,
        eot_id=run.tokenizer.eot_id,
    )
    return completions(ids_MxN, run.tokenizer)
