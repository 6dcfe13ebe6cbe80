"""Decode throughput with and without the key/value cache (issue 6).

Fixed model (V=8192, T=256, D=256, L=4, H=4, learned positions, float32), batch 1, a 1-token prompt and
256 greedy new tokens, so generation fills the whole context of 256. Both decoders are one jitted loop,
compiled before timing:
- cached: `scaling.use.generate` (prefill, then one position per token against the cache);
- uncached: every token re-runs the model over the context window (static shape [1, T], the prefix left-
  aligned and the rest padding, which causal attention ignores) and reads the logits at the last real
  position; this is the naive decoder with static shapes (no recompiling per length).
Both must produce the same tokens. Run: `python benchmarks/bench_decode.py` (prints a Markdown row).
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from report import machine_line

from scaling.model.config import ModelConfig
from scaling.model.decoder import GPT
from scaling.train.mfu import best_seconds
from scaling.use.generate import decode_loop
from scaling.use.sampling import SamplingConfig

CFG = ModelConfig(V=8192, T=256, D=256, L=4, H=4)
NEW_TOKENS = 256


@functools.partial(jax.jit, static_argnums=(0, 3))
def uncached_greedy(graphdef, params, prompt_1xP, N: int) -> jax.Array:
    model = nnx.merge(graphdef, params)
    P, T = prompt_1xP.shape[1], model.cfg.T
    window_1xT = jnp.zeros((1, T), jnp.int32).at[:, :P].set(prompt_1xP)

    def step(i, window_1xT):
        h_1xTxD = model.hidden(window_1xT)
        last_1x1xD = jax.lax.dynamic_slice_in_dim(h_1xTxD, P + i - 1, 1, axis=1)
        token = jnp.argmax(model.logits(last_1x1xD)[0, 0]).astype(jnp.int32)
        return jax.lax.dynamic_update_slice(window_1xT, token[None, None], (0, P + i))

    window_1xT = jax.lax.fori_loop(0, N - 1, step, window_1xT)
    h_1xTxD = model.hidden(window_1xT)
    last = jnp.argmax(model.logits(h_1xTxD[:, P + N - 2 : P + N - 1])[0, 0]).astype(jnp.int32)
    return jnp.concatenate([window_1xT[0, P : P + N - 1], last[None]])


def timed(fn, *args, repeats: int) -> tuple[float, np.ndarray]:
    out = np.asarray(fn(*args))  # compile and warm up
    return best_seconds(lambda: jax.block_until_ready(fn(*args)), repeats), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per decoder (best is kept)")
    args = parser.parse_args()
    print(f"`python benchmarks/bench_decode.py`: {machine_line()}", flush=True)
    graphdef, params = nnx.split(nnx.jit(lambda: GPT(CFG, nnx.Rngs(0)))(), nnx.Param)
    prompt_1xP = jnp.asarray([[17]], jnp.int32)
    greedy = SamplingConfig(temperature=0.0)
    eot = CFG.V  # an id the model never emits, so the cached loop runs all 256 steps
    cached_s, cached = timed(
        lambda: decode_loop(graphdef, params, prompt_1xP, jax.random.key(0), NEW_TOKENS, greedy, 1, eot)[0],
        repeats=args.repeats,
    )
    uncached_s, uncached = timed(
        lambda: uncached_greedy(graphdef, params, prompt_1xP, NEW_TOKENS), repeats=args.repeats
    )
    if not np.array_equal(cached, uncached):
        raise SystemExit(f"cached and uncached greedy tokens differ:\n{cached}\n{uncached}")
    cached_tps, uncached_tps = NEW_TOKENS / cached_s, NEW_TOKENS / uncached_s
    print("| model | new tokens | cached tok/s | uncached tok/s | speed-up | devices |")
    print("|---|---:|---:|---:|---:|---|")
    print(
        f"| V={CFG.V} T={CFG.T} D={CFG.D} L={CFG.L} H={CFG.H}, batch 1 | {NEW_TOKENS} | {cached_tps:,.0f} "
        f"| {uncached_tps:,.0f} | {cached_tps / uncached_tps:.1f}x | {jax.device_count()} x "
        f"{jax.devices()[0].platform} |"
    )


if __name__ == "__main__":
    main()
