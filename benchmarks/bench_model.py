"""Train-step throughput of the decoder against the float32 matmul ceiling measured in the same run.

For each shape: tokens/s, achieved model GFLOP/s (ModelConfig.flops_per_token, so the same convention as
the scaling fits) and the ratio to the ceiling of a 2048x2048 float32 matmul. The machine may be shared, so
every timed step is paired with a ceiling probe taken right before it: the table reports the fastest step
against the fastest probe of the whole run, and the median of the per-pair ratios (the steadier figure).

Then the step's own matmuls (every dot_general of its jaxpr, with its shapes, layout and count) are timed
one by one on their own, each paired with the probe the same way. Inside the step XLA compiles the same
products (it may change their layouts or fuse elementwise work into them), so their summed time is in effect
a lower bound on the step's: the step's ratio cannot much exceed theirs, whatever happens to the rest.

    python benchmarks/bench_model.py [--rounds 6] [--write]

`--write` replaces the "## Model train step (issue 2)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import numpy as np
from report import machine_line, write_section

from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.model.traced_matmuls import Matmul, matmuls_of
from scaling.train.mfu import best_seconds, measure_matmul_flops
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step

SECTION = "## Model train step (issue 2)"
SHAPES = ((128, 4), (256, 4), (256, 6), (384, 6))  # (D, L) with V=8192, T=256, head width 64
BATCH = 16


@dataclass(frozen=True)
class Row:
    cfg: ModelConfig
    step_seconds: list[float]
    ceilings: list[float]  # FLOP/s of the probe taken right before each step
    matmul_seconds: list[float]  # the step's matmuls timed alone, one sum per round
    matmul_ceilings: list[float]

    @property
    def tokens_per_s(self) -> float:
        return BATCH * self.cfg.T / min(self.step_seconds)

    @property
    def gflops(self) -> float:
        return self.tokens_per_s * self.cfg.flops_per_token / 1e9

    def ratio(self, ceiling: float) -> float:
        return self.gflops * 1e9 / ceiling

    @property
    def median_pair_ratio(self) -> float:
        return pair_ratio(self.cfg, self.step_seconds, self.ceilings)

    @property
    def matmul_pair_ratio(self) -> float:
        return pair_ratio(self.cfg, self.matmul_seconds, self.matmul_ceilings)

    @property
    def matmul_share(self) -> float:
        return statistics.median(self.matmul_seconds) / statistics.median(self.step_seconds)


def pair_ratio(cfg: ModelConfig, seconds: list[float], ceilings: list[float]) -> float:
    """Median over rounds of (model FLOPs of one step / seconds) / the probe taken just before."""
    flops = BATCH * cfg.T * cfg.flops_per_token
    return statistics.median(flops / s / c for s, c in zip(seconds, ceilings, strict=True))


def timed_matmul(matmul: Matmul) -> Callable[[], float]:
    """A closure that runs one compiled copy of `matmul` on random operands and returns its best-of-3 time."""
    key_lhs, key_rhs = jax.random.split(jax.random.key(0))
    lhs = jax.random.normal(key_lhs, matmul.lhs_shape, matmul.lhs_dtype)
    rhs = jax.random.normal(key_rhs, matmul.rhs_shape, matmul.rhs_dtype)
    dot = jax.jit(
        partial(
            jax.lax.dot_general,
            dimension_numbers=matmul.dimension_numbers,
            preferred_element_type=matmul.preferred_element_type,
        )
    )
    dot(lhs, rhs).block_until_ready()
    return lambda: best_seconds(lambda: dot(lhs, rhs).block_until_ready(), repeats=3)


def time_matmuls(matmuls: Counter[Matmul], rounds: int) -> tuple[list[float], list[float]]:
    """Per round: a probe, then every matmul once (its best of 3) times how often the step runs it."""
    runs = [(timed_matmul(m), count) for m, count in matmuls.items()]
    seconds, ceilings = [], []
    for _ in range(rounds):
        ceilings.append(measure_matmul_flops(2048, repeats=3))
        seconds.append(sum(run() * count for run, count in runs))
    return seconds, ceilings


def bench_shape(cfg: ModelConfig, rounds: int) -> Row:
    mesh = make_mesh(MeshConfig())
    tx = make_optimizer(OptimConfig())
    tokens = np.random.default_rng(0).integers(0, cfg.V, (1, BATCH, cfg.T + 1), dtype=np.int32)
    with jax.set_mesh(mesh):
        layout = make_layout(cfg, tx, mesh)
        params, opt_state = init_state(cfg, tx, layout, seed=0)
        step = make_train_step(layout, tx, mesh)
        matmuls = matmuls_of(step, params, opt_state, tokens, 0, 1e-3)
        seconds, ceilings = [], []
        for i in range(rounds + 1):
            probe = measure_matmul_flops(2048, repeats=3)
            start = time.perf_counter()
            params, opt_state, metrics = step(params, opt_state, tokens, i, 1e-3)
            jax.block_until_ready((params, metrics))
            if i > 0:  # step 0 compiles
                seconds.append(time.perf_counter() - start)
                ceilings.append(probe)
    return Row(cfg, seconds, ceilings, *time_matmuls(matmuls, rounds))


def table(rows: list[Row], rounds: int, machine: str) -> str:
    ceiling = max(c for r in rows for c in r.ceilings)
    lines = [
        f"`python benchmarks/bench_model.py`: {machine}.",
        "",
        f"jax {jax.__version__}, {jax.device_count()} CPU device; "
        f"V=8192, T=256, batch {BATCH}, float32, AdamW, 1 micro-batch; {rounds} timed steps per shape, each "
        "after a float32 2048x2048 matmul probe. Pair ratio = a step's model FLOP/s over the probe taken "
        "just before it (median over rounds); best/best = fastest step over the fastest probe of the run "
        f"({ceiling / 1e9:.1f} GFLOP/s). tokens/s and GFLOP/s are from the fastest step. Matmuls alone = "
        "the step's dot_generals (from its jaxpr: shapes, dimension numbers, counts) compiled and timed one "
        "by one, best of 3 each, summed per round: the same model FLOPs over that time, paired with a probe "
        "(median over rounds), in effect an upper bound on the step's pair ratio; matmul share = their time "
        "over the step's (medians).",
        "",
        "| D | L | H | params | tokens/s | GFLOP/s | pair ratio (median) | best/best | matmuls alone "
        "| matmul share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.cfg
        lines.append(
            f"| {c.D} | {c.L} | {c.H} | {c.params / 1e6:.2f}M | {r.tokens_per_s:,.0f} | {r.gflops:.1f} | "
            f"{r.median_pair_ratio:.0%} | {r.ratio(ceiling):.0%} | {r.matmul_pair_ratio:.0%} | "
            f"{r.matmul_share:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    rows = []
    for D, L in SHAPES:
        row = bench_shape(ModelConfig(V=8192, T=256, D=D, L=L, H=D // 64), args.rounds)
        print(
            f"D={D} L={L}: {row.tokens_per_s:,.0f} tokens/s, {row.gflops:.1f} GFLOP/s, pair ratio "
            f"{row.median_pair_ratio:.0%}, matmuls alone {row.matmul_pair_ratio:.0%}",
            flush=True,
        )
        rows.append(row)
    text = table(rows, args.rounds, machine)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
