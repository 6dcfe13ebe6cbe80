"""Population training (issue 11): which layout of K same-shape runs is bitwise the solo step, how fast
each is, and what a population saves end to end against one process per run.

    python benchmarks/bench_population.py [--quick] [--ladder | --ladder-only]

1. Layouts (model V=264, T=64, D=32, L=2, H=2, batch 8, float32, one CPU device), each against the solo
   step (`step.make_train_step`, one member at a time): `jax.vmap` of `step.gradient_step` over stacked
   parameters, optimizer states, batches and rates; `jax.lax.map` of it; a `fori_loop` over the members
   whose trip count is an argument (so XLA cannot unroll it, not even at K=1); and the population's
   layout, the solo compiled step called once per member. Bitwise: parameters, optimizer state and
   metrics after each of 4 steps, K=2..4, against the solo step and against the same layout at K=1 (a
   layout whose member equals its own K=1 run lets a run trained alone use it and stay bitwise equal to
   every population). Speed: K=16 members x 10 steps, warm, best of 3, tokens/s.
2. Ladder shapes (`--ladder`; `--ladder-only`: these alone): the speed table at the one-layer shapes of
   the CPU ladders (V=257, D 8, 20, 40, heads of 4, batch 4 or 16), K=16 x 20 steps. Every layout takes
   the step number and rates as NumPy scalars, as the trainer does.
3. End to end: N tiny runs (D=32, T=64, 30 steps) as one `scaling train-population` process against N
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
from scaling.train.step import gradient_step, loss_sum, make_flat_train_step, make_train_step

ROOT = Path(__file__).resolve().parents[1]
CFG = ModelConfig(V=264, T=64, D=32, L=2, H=2)
BATCH = 8
LADDER = ((8, 4), (20, 16), (40, 16))  # (D, batch) of the CPU ladders' one-layer models, heads of 4


def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _index(tree, k):
    return jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, k, keepdims=False), tree)


def _put(stacked, tree, k):
    return jax.tree.map(lambda X, x: jax.lax.dynamic_update_index_in_dim(X, x, k, 0), stacked, tree)


def member_loop(raw):
    """`raw` stepped once per member inside one program: a fori_loop whose trip count is an argument, so
    its body is compiled for one member whatever K is (a static trip count lets XLA unroll it)."""

    def run(P, S, B, step, LR, n):
        def body(k, carry):
            P, S, M = carry
            p, s, m = raw(_index(P, k), _index(S, k), B[k], step, LR[k])
            return _put(P, p, k), _put(S, s, k), _put(M, m, k)

        metrics = jax.eval_shape(raw, _index(P, 0), _index(S, 0), B[0], step, LR[0])[2]
        M = jax.tree.map(lambda a: jnp.zeros((B.shape[0], *a.shape), a.dtype), metrics)
        return jax.lax.fori_loop(0, n, body, (P, S, M))

    loop = jax.jit(run)
    return lambda P, S, B, step, LR: loop(P, S, B, step, LR, np.int32(LR.shape[0]))


class Layouts:
    """The solo step and the stacked layouts built from the same `gradient_step`."""

    def __init__(self, cfg: ModelConfig = CFG, batch: int = BATCH):
        self.cfg, self.batch_size = cfg, batch
        mesh = make_mesh(MeshConfig())
        self.tx = make_optimizer(OptimConfig())
        self.layout = make_layout(cfg, self.tx, mesh)
        graphdef = self.layout.graphdef
        self.raw = raw = gradient_step(lambda p, b, k: (*loss_sum(graphdef, p, b, k), {}), self.tx)
        self.solo = make_train_step(self.layout, self.tx, mesh)
        self.flat_solo = make_flat_train_step(self.layout, self.tx, mesh)  # the trainer's own step
        self.stacked = {
            "vmap": jax.jit(jax.vmap(raw, in_axes=(0, 0, 0, None, 0))),
            "lax.map": jax.jit(
                lambda P, S, B, s, L: jax.lax.map(lambda m: raw(m[0], m[1], m[2], s, m[3]), (P, S, B, L))
            ),
            "member loop": member_loop(raw),
        }

    def states(self, K: int):
        return [init_state(self.cfg, self.tx, self.layout, seed) for seed in range(K)]

    def batch(self, member: int, step: int) -> jax.Array:
        rng = np.random.default_rng(1000 * member + step)
        return jnp.asarray(rng.integers(0, self.cfg.V, (1, self.batch_size, self.cfg.T + 1)), jnp.int32)


def _member(tree, k: int):
    return jax.tree.map(lambda x: x[k], tree)


def _equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def stacked_steps(lay: Layouts, name: str, K: int, steps: int) -> list:
    """The stacked layout `name` stepped `steps` times from the solo initial states: outputs per step."""
    states = [jax.device_get(s) for s in lay.states(K)]
    P, S = _stack([s[0] for s in states]), _stack([s[1] for s in states])
    lrs = jnp.asarray([1e-3 * (k + 1) for k in range(K)], jnp.float32)
    outs = []
    for step in range(steps):
        batches = jnp.stack([lay.batch(k, step) for k in range(K)])
        out = jax.device_get(lay.stacked[name](P, S, batches, jnp.int32(step), lrs))
        P, S = out[:2]
        outs.append(out)
    return outs


def bitwise(lay: Layouts, K: int, steps: int = 4) -> dict[str, tuple[int | None, int | None]]:
    """Per stacked layout: the first step (1-based) after which some member differs from the solo step,
    and the first after which member 0 differs from the same layout at K=1 (None: bitwise all along)."""
    lrs = [1e-3 * (k + 1) for k in range(K)]
    solo_states = [jax.device_get(s) for s in lay.states(K)]
    solo_outs = []
    for step in range(steps):
        solo_outs.append(
            [
                jax.device_get(
                    lay.solo(*solo_states[k], lay.batch(k, step), jnp.int32(step), jnp.float32(lrs[k]))
                )
                for k in range(K)
            ]
        )
        solo_states = [out[:2] for out in solo_outs[-1]]
    result = {}
    for name in lay.stacked:
        outs, alone = stacked_steps(lay, name, K, steps), stacked_steps(lay, name, 1, steps)
        pairs = zip(outs, solo_outs, strict=True)
        vs_solo = [all(_equal(_member(o, k), s[k]) for k in range(K)) for o, s in pairs]
        vs_one = [_equal(_member(o, 0), _member(a, 0)) for o, a in zip(outs, alone, strict=True)]
        result[name] = (_first_false(vs_solo), _first_false(vs_one))
    return result


def _first_false(flags: list[bool]) -> int | None:
    return next((i + 1 for i, same in enumerate(flags) if not same), None)


def speed(lay: Layouts, K: int, steps: int) -> dict[str, float]:
    """Tokens per second of K members x `steps` steps in each layout."""
    states = lay.states(K)
    batches = [[lay.batch(k, s) for k in range(K)] for s in range(steps)]
    lr = np.float32(1e-3)  # NumPy scalars, as the trainer passes them: jnp ones cost ~0.3 ms a call
    leaves = [jax.tree.leaves(state) for state in lay.states(K)]  # donated and replaced at every step

    def one_after_another():
        for s in range(steps):
            for k in range(K):
                leaves[k], out = lay.flat_solo(leaves[k], batches[s][k], np.int32(s), lr)
        jax.block_until_ready(out)

    runs = {"solo step per member (population)": one_after_another}
    P, S = _stack([s[0] for s in states]), _stack([s[1] for s in states])
    LR = jnp.full((K,), 1e-3, jnp.float32)
    stacked_batches = [jnp.stack(b) for b in batches]
    for name, fn in lay.stacked.items():
        runs[name] = lambda fn=fn: jax.block_until_ready(
            [fn(P, S, stacked_batches[s], np.int32(s), LR) for s in range(steps)]
        )
    tokens = K * steps * lay.batch_size * lay.cfg.T
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


def _bitwise_table(lay: Layouts, quick: bool) -> str:
    names = list(lay.stacked)
    header = " | ".join(f"{n}: first step differing from solo / from its own K=1" for n in names)
    lines = [
        f"| K | {header} |",
        "|---|" + "---|" * len(names),
    ]
    for K in (2,) if quick else (2, 3, 4):
        diff = bitwise(lay, K)
        cells = [" / ".join(str(d or "none") for d in diff[n]) for n in names]
        lines.append(f"| {K} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speed_table(lay: Layouts, K: int, steps: int) -> str:
    tps = speed(lay, K, steps)
    base = tps["solo step per member (population)"]
    cfg = lay.cfg
    shape = f"{K} members, D={cfg.D}, L={cfg.L}, batch {lay.batch_size}"
    lines = [
        f"| {shape} | tokens/s | vs the solo step per member |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value:,.0f} | {value / base:.2f}x |" for name, value in tps.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K=2 bitwise only, 4 members, 4 end-to-end runs")
    parser.add_argument("--ladder", action="store_true", help="also the speed table at the ladders' shapes")
    parser.add_argument(
        "--ladder-only", action="store_true", help="only the speed table at the ladders' shapes"
    )
    args = parser.parse_args()
    print(f"Machine: {machine_line()}\n")
    K = 4 if args.quick else 16
    if args.ladder or args.ladder_only:
        for D, batch in LADDER:
            cfg = ModelConfig(V=257, T=64, D=D, L=1, H=D // 4, pos_encoding="learned")
            print(_speed_table(Layouts(cfg, batch), K, steps=4 if args.quick else 20) + "\n", flush=True)
    if args.ladder_only:
        return
    lay = Layouts()
    print(_bitwise_table(lay, args.quick))
    print("\n" + _speed_table(lay, K, steps=4 if args.quick else 10))
    runs = 4 if args.quick else 16
    population, separate = end_to_end(runs, steps=30)
    print(
        f"\n{runs} runs x 30 steps: one population {population:.1f} s, one process each {separate:.1f} s "
        f"({separate / population:.1f}x)"
    )


if __name__ == "__main__":
    main()
