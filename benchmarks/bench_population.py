"""Population training (issue 11): which layout of K same-shape runs is bitwise the solo step, how fast
each is, and what a population saves end to end against one process per run.

    python benchmarks/bench_population.py [--quick]

1. Layouts (model V=264, T=64, D=32, L=2, H=2, batch 8, float32, one CPU device), each against the solo
   step (`step.make_train_step`, one member at a time): `jax.vmap` of `step.gradient_step` over stacked
   parameters, optimizer states, batches and rates; `jax.lax.map` of it; and the population's layout, the
   solo compiled step called once per member. Bitwise: parameters, optimizer state and metrics after
   each of 4 steps, K=2..4. Speed: K=16 members x 10 steps, warm, best of 3, tokens/s.
2. End to end: N tiny runs (D=32, T=64, 30 steps) as one `scaling train-population` process against N
   `scaling train` processes one after another (imports, data, compile paid per process).
Prints Markdown; figures depend on load (the machine line says how loaded it was).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from report import machine_line

from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.train.mfu import best_seconds
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.state import init_state, make_layout
from scaling.train.step import gradient_step, loss_sum, make_train_step

ROOT = Path(__file__).resolve().parents[1]
CFG = ModelConfig(V=264, T=64, D=32, L=2, H=2)
BATCH = 8


def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


class Layouts:
    """The solo step and the stacked layouts built from the same `gradient_step`."""

    def __init__(self):
        mesh = make_mesh(MeshConfig())
        self.tx = make_optimizer(OptimConfig())
        self.layout = make_layout(CFG, self.tx, mesh)
        graphdef = self.layout.graphdef
        self.raw = raw = gradient_step(lambda p, b, k: (*loss_sum(graphdef, p, b, k), {}), self.tx)
        self.solo = make_train_step(self.layout, self.tx, mesh)
        self.stacked = {
            "vmap": jax.jit(jax.vmap(raw, in_axes=(0, 0, 0, None, 0))),
            "lax.map": jax.jit(
                lambda P, S, B, s, L: jax.lax.map(lambda m: raw(m[0], m[1], m[2], s, m[3]), (P, S, B, L))
            ),
        }

    def states(self, K: int):
        return [init_state(CFG, self.tx, self.layout, seed) for seed in range(K)]

    def batch(self, member: int, step: int) -> jax.Array:
        rng = np.random.default_rng(1000 * member + step)
        return jnp.asarray(rng.integers(0, CFG.V, (1, BATCH, CFG.T + 1)), jnp.int32)


def _member(tree, k: int):
    return jax.tree.map(lambda x: x[k], tree)


def _equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def bitwise(lay: Layouts, K: int, steps: int = 4) -> dict[str, int | None]:
    """Per stacked layout: the first step (1-based) after which some member differs from solo, or None."""
    lrs = [1e-3 * (k + 1) for k in range(K)]
    solo_states = [jax.device_get(s) for s in lay.states(K)]
    first_diff: dict[str, int | None] = dict.fromkeys(lay.stacked)
    stacked = {
        name: (_stack([s[0] for s in solo_states]), _stack([s[1] for s in solo_states]))
        for name in lay.stacked
    }
    for step in range(steps):
        solo_out = [
            jax.device_get(
                lay.solo(*solo_states[k], lay.batch(k, step), jnp.int32(step), jnp.float32(lrs[k]))
            )
            for k in range(K)
        ]
        batches = jnp.stack([lay.batch(k, step) for k in range(K)])
        for name, fn in lay.stacked.items():
            out = fn(*stacked[name], batches, jnp.int32(step), jnp.asarray(lrs, jnp.float32))
            stacked[name] = out[:2]
            same = all(_equal(_member(out, k), solo_out[k]) for k in range(K))
            if not same and first_diff[name] is None:
                first_diff[name] = step + 1
        solo_states = [out[:2] for out in solo_out]
    return first_diff


def speed(lay: Layouts, K: int, steps: int) -> dict[str, float]:
    """Tokens per second of K members x `steps` steps in each layout."""
    states = lay.states(K)
    batches = [[lay.batch(k, s) for k in range(K)] for s in range(steps)]
    lr = jnp.float32(1e-3)
    solo = jax.jit(lay.raw)  # the solo step without donation, so the states can be stepped again

    def one_after_another():
        for s in range(steps):
            for k in range(K):
                out = solo(*states[k], batches[s][k], jnp.int32(s), lr)
        jax.block_until_ready(out)

    runs = {"solo step per member (population)": one_after_another}
    P, S = _stack([s[0] for s in states]), _stack([s[1] for s in states])
    LR = jnp.full((K,), 1e-3, jnp.float32)
    stacked_batches = [jnp.stack(b) for b in batches]
    for name, fn in lay.stacked.items():
        runs[name] = lambda fn=fn: jax.block_until_ready(
            [fn(P, S, stacked_batches[s], jnp.int32(s), LR) for s in range(steps)]
        )
    tokens = K * steps * BATCH * CFG.T
    result = {}
    for name, run in runs.items():
        run()  # compile and warm up
        result[name] = tokens / best_seconds(run, 3)
    return result


def end_to_end(runs: int, steps: int) -> tuple[float, float]:
    """Seconds for `runs` runs as one population and as one process each."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        configs = []
        for k in range(runs):
            cfg = {
                "name": f"m{k}",
                "model": {"V": 264, "T": 64, "D": 32, "L": 2, "H": 2},
                "data": {"corpus": "stdlib", "encoding": "bytes", "max_bytes": 2_000_000},
                "optim": {"lr": 1e-3 * (1 + k % 4), "warmup_steps": 5},
                "train": {
                    "steps": steps,
                    "batch_size": BATCH,
                    "seed": k,
                    "eval_every": steps,
                    "checkpoint_every": steps,
                },
            }
            configs.append(work / f"m{k}.yaml")
            configs[-1].write_text(yaml.safe_dump(cfg))
        env_cmd = [sys.executable, "-m", "scaling.cli"]
        subprocess.run(
            [*env_cmd, "train", str(configs[0]), "--out", str(work / "warm"), "--no-progress"],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )  # data cached
        start = time.perf_counter()
        outs = [str(work / f"pop-{k}") for k in range(runs)]
        subprocess.run(
            [*env_cmd, "train-population", *map(str, configs), "--out", *outs, "--no-progress"],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        population = time.perf_counter() - start
        start = time.perf_counter()
        for k, config in enumerate(configs):
            subprocess.run(
                [*env_cmd, "train", str(config), "--out", str(work / f"solo-{k}"), "--no-progress"],
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
        return population, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K=2 bitwise only, 4 members, 4 end-to-end runs")
    args = parser.parse_args()
    print(f"Machine: {machine_line()}\n")
    lay = Layouts()
    print("| K | " + " | ".join(f"{name}: first step differing from solo" for name in lay.stacked) + " |")
    print("|---|" + "---|" * len(lay.stacked))
    for K in (2,) if args.quick else (2, 3, 4):
        diff = bitwise(lay, K)
        print(f"| {K} | " + " | ".join(str(d or "none (bitwise)") for d in diff.values()) + " |")
    K = 4 if args.quick else 16
    tps = speed(lay, K, steps=4 if args.quick else 10)
    base = tps["solo step per member (population)"]
    print(f"\n| {K} members, D=32 | tokens/s | vs the solo step per member |\n|---|---|---|")
    for name, value in tps.items():
        print(f"| {name} | {value:,.0f} | {value / base:.2f}x |")
    runs = 4 if args.quick else 16
    population, separate = end_to_end(runs, steps=30)
    print(
        f"\n{runs} runs x 30 steps: one population {population:.1f} s, one process each {separate:.1f} s "
        f"({separate / population:.1f}x)"
    )


if __name__ == "__main__":
    main()
