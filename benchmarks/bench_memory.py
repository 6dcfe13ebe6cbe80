"""Peak memory of one training step with and without remat (issue 14).

Fixed shape (V=8192, T=256, D=256, L=4, H=4, float32, batch 16 in one micro-batch, AdamW), for each
`model.remat` (none, dots, block):
- the formula's estimate of the temporaries (activations and gradients; `scaling.train.memory_estimate`,
  what `scaling train` checks first);
- XLA's memory analysis of the step compiled on the abstract state (temporary buffers), under XLA:CPU's
  default scheduler (what training uses) and its memory-optimised one (what remat needs to pay off);
- the measured peak resident memory of a fresh process that initialises the state, compiles the step and
  runs 3 steps (ru_maxrss), and how much of it the steps added over the compile (0: compiling peaked higher).
Run: `python benchmarks/bench_memory.py [--quick]` (prints a Markdown table; --quick: a quarter-size shape).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from report import machine_line

from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh, microbatch_sharding, replicated
from scaling.train.memory_estimate import human_bytes, run_formula
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.run_config import RunConfig, TrainConfig
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step

SHAPES = {
    "mid": (ModelConfig(V=8192, T=256, D=256, L=4, H=4), 16),
    "quick": (ModelConfig(V=2048, T=128, D=128, L=2, H=4), 8),
}
MEMORY_SCHEDULER = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
POLICIES = ("none", "dots", "block")


def compile_step(model: ModelConfig, batch: int, options: dict | None):
    mesh = make_mesh(MeshConfig(), jax.devices()[:1])
    tx = make_optimizer(OptimConfig())
    layout = make_layout(model, tx, mesh)
    rep = replicated(mesh)
    tokens = jax.ShapeDtypeStruct((1, batch, model.T + 1), jnp.int32, sharding=microbatch_sharding(mesh))
    scalars = (
        jax.ShapeDtypeStruct((), jnp.int32, sharding=rep),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=rep),
    )
    with jax.set_mesh(mesh):
        step = make_train_step(layout, tx, mesh)
        compiled = step.lower(layout.abstract_params, layout.abstract_opt_state, tokens, *scalars).compile(
            compiler_options=options
        )
    return compiled, layout, tx


def child(shape: str, remat: str) -> None:
    """One fresh process: state, compile, 3 steps; prints its peak RSS before and after the steps."""
    base, batch = SHAPES[shape]
    model = base.replace(remat=remat)
    compiled, layout, tx = compile_step(model, batch, None)
    params, opt_state = init_state(model, tx, layout, seed=0)
    tokens = np.random.default_rng(0).integers(0, model.V, (1, batch, model.T + 1), dtype=np.int32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for step in range(3):
        params, opt_state, metrics = compiled(params, opt_state, tokens, jnp.int32(step), jnp.float32(1e-3))
    jax.block_until_ready(metrics)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"before": before, "after": after, "loss": float(metrics["loss"])}))


def measured(shape: str, remat: str) -> dict:
    command = [sys.executable, __file__, "--child", shape, remat]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter-size shape")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "REMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    shape = "quick" if args.quick else "mid"
    base, batch = SHAPES[shape]
    print(f"`python benchmarks/bench_memory.py{' --quick' if args.quick else ''}`: {machine_line()}")
    print(f"V={base.V} T={base.T} D={base.D} L={base.L} H={base.H}, batch {batch}, float32, 1 device")
    print(
        "| remat | formula temp | compiled temp (default) | compiled temp (memory-optimised) | peak RSS | "
        "RSS added by steps | loss after 3 steps |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for remat in POLICIES:
        model = base.replace(remat=remat)
        cfg = RunConfig(model=model, train=TrainConfig(batch_size=batch))
        formula = run_formula(cfg, {"data": 1, "fsdp": 1, "tensor": 1})
        temps = [
            compile_step(model, batch, options)[0].memory_analysis().temp_size_in_bytes
            for options in (None, MEMORY_SCHEDULER)
        ]
        rss = measured(shape, remat)
        cells = [
            remat,
            human_bytes(formula.activations + formula.gradients),
            *(human_bytes(t) for t in temps),
            human_bytes(rss["after"]),
            human_bytes(rss["after"] - rss["before"]),
            f"{rss['loss']:.6f}",
        ]
        print(f"| {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
