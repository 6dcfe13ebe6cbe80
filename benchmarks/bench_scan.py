"""Compile time and step time of the train step with the blocks unrolled and scanned (issue 14).

A small width (V=256, T=64, D=64, H=2, batch 8, float32, AdamW, 1 device) at depths L = 2, 8, 32, so the
figures are about the number of blocks XLA sees, not the matmuls. Compile = tracing and lowering the jitted
step plus XLA's compile, from a fresh process's caches (each program is new to it); step = the fastest of
`--steps` timed steps after the compiled one. One untimed L=1 program of each layout compiles first, so no
row pays the process's one-time costs. The target: scanned, L=32 compiles within 1.5x of L=2.

    python benchmarks/bench_scan.py [--steps 5] [--repeats 3] [--write]

`--write` replaces the "## Scanned layers (issue 14)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import jax
import numpy as np
from report import machine_line, write_section

from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step

SECTION = "## Scanned layers (issue 14)"
DEPTHS = (2, 8, 32)
BATCH = 8
BASE = ModelConfig(V=256, T=64, D=64, L=2, H=2)


@dataclass(frozen=True)
class Row:
    L: int
    scanned: bool
    lower_seconds: float
    compile_seconds: float
    step_seconds: float

    @property
    def total_compile(self) -> float:
        return self.lower_seconds + self.compile_seconds


def bench(L: int, scanned: bool, steps: int) -> Row:
    cfg = BASE.replace(L=L, scan_layers=scanned)
    mesh = make_mesh(MeshConfig())
    tx = make_optimizer(OptimConfig())
    tokens = np.random.default_rng(0).integers(0, cfg.V, (1, BATCH, cfg.T + 1), dtype=np.int32)
    with jax.set_mesh(mesh):
        layout = make_layout(cfg, tx, mesh)
        params, opt_state = init_state(cfg, tx, layout, seed=0)
        start = time.perf_counter()
        lowered = make_train_step(layout, tx, mesh).lower(params, opt_state, tokens, 0, 1e-3)
        lowered_at = time.perf_counter()
        step = lowered.compile()
        compiled_at = time.perf_counter()
        seconds = []
        for i in range(steps + 1):
            tick = time.perf_counter()
            params, opt_state, metrics = step(params, opt_state, tokens, i, 1e-3)
            jax.block_until_ready((params, metrics))
            seconds.append(time.perf_counter() - tick)
    return Row(L, scanned, lowered_at - start, compiled_at - lowered_at, min(seconds[1:]))


def table(rows: list[Row], steps: int, repeats: int, machine: str) -> str:
    base = {r.scanned: r.total_compile for r in rows if r.L == DEPTHS[0]}
    lines = [
        f"`python benchmarks/bench_scan.py`: {machine}.",
        "",
        f"jax {jax.__version__}, {jax.device_count()} CPU device; V={BASE.V}, T={BASE.T}, D={BASE.D}, "
        f"H={BASE.H}, batch {BATCH}, float32, AdamW. Compile = trace and lower + XLA compile of the train "
        f"step, the fastest of {repeats} rounds over every case; x L={DEPTHS[0]} = that total over the same "
        f"layout's at L={DEPTHS[0]}; step = fastest of {steps} steps in that round.",
        "",
        "| L | layout | lower s | compile s | total s | x L=2 | step ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.L} | {'scanned' if r.scanned else 'unrolled'} | {r.lower_seconds:.2f} | "
            f"{r.compile_seconds:.2f} | {r.total_compile:.2f} | {r.total_compile / base[r.scanned]:.2f} | "
            f"{r.step_seconds * 1e3:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="rounds over every (L, layout); fastest kept")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    for scanned in (False, True):
        bench(1, scanned, 1)  # warm-up: first-program costs of each layout
    trials: dict[tuple[int, bool], list[Row]] = {}
    for _ in range(args.repeats):  # rounds, so a burst of load on this shared machine hits every case alike
        for L in DEPTHS:
            for scanned in (False, True):
                row = bench(L, scanned, args.steps)
                print(
                    f"L={L} {'scanned' if scanned else 'unrolled'}: compile {row.total_compile:.2f} s, "
                    f"step {row.step_seconds * 1e3:.1f} ms",
                    flush=True,
                )
                trials.setdefault((L, scanned), []).append(row)
    rows = [min(runs, key=lambda r: r.total_compile) for runs in trials.values()]
    text = table(rows, args.steps, args.repeats, machine)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
