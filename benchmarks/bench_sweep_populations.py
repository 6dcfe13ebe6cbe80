"""Sweep throughput with populations on and off: total model FLOPs of all runs / wall time, over the
float32 matmul ceiling measured in the same process.

    python benchmarks/bench_sweep_populations.py [--sweep experiments/cpu_isoflop.yaml] [--quick] [--write]

The sweep runs twice from empty directories, first with `launch.population: 1` (one `scaling train`
process per run), then with the sweep file's population cap (default 8: same-shape runs share one
`scaling train-population` process); each with its own empty compilation cache, so neither reuses the
other's compiles. `--quick` keeps the first budget only, with two seeds (so every shape has a population
of two). `--write` puts the figures into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from report import machine_line, write_section

from scaling.train.mfu import measure_matmul_flops

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Sweep populations (issue 11)"  # one section per sweep file


def variant(spec: dict, population: int, quick: bool) -> dict:
    spec = copy.deepcopy(spec)
    spec.setdefault("launch", {})["population"] = population
    spec.pop("targets", None)  # the ladder's throughput; a sweep's targets are single long runs
    if quick:
        spec["grid"]["isoflop"] = spec["grid"]["isoflop"][:1]
        spec["recipe"]["seeds"] = 2
    return spec


def run_sweep(spec: dict, work: Path) -> dict:
    """Train the sweep from scratch in `work`; its wall time, FLOPs and worker processes."""
    from scaling.sweep.ledger import Ledger

    path = work / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = work / "sweep"
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(work / "jax_cache")}
    command = [sys.executable, "-m", "scaling.cli", "sweep", "run", str(path), "--out", str(out)]
    load = os.getloadavg()
    start = time.perf_counter()
    subprocess.run([*command, "--no-progress"], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    started = [e for e in Ledger(out).events() if e["event"] == "started"]
    return {
        "population": spec["launch"]["population"],
        "runs": len(summaries),
        "processes": len({e["child"] for e in started}),
        "flops": sum(s["flops"] for s in summaries),
        "wall_seconds": wall,
        "load_before": load,
    }


def report(sweep: str, quick: bool, machine: str, ceiling: float, results: list[dict]) -> str:
    lines = [
        f"### `{sweep}`{' (--quick: first budget, 2 seeds)' if quick else ''}: {machine}",
        "",
        f"float32 2048x2048 matmul ceiling, measured in this run: {ceiling:.3g} FLOP/s.",
        "",
        "| launch.population | runs | worker processes | model FLOPs | wall s | FLOP/s | of ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rate = r["flops"] / r["wall_seconds"]
        lines.append(
            f"| {r['population']} | {r['runs']} | {r['processes']} | {r['flops']:.3g} | "
            f"{r['wall_seconds']:.0f} | {rate:.3g} | {rate / ceiling:.1%} |"
        )
    off, on = results[0], results[-1]
    lines += ["", f"Speed-up with populations: {off['wall_seconds'] / on['wall_seconds']:.2f}x."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "experiments" / "cpu_isoflop.yaml")
    parser.add_argument("--quick", action="store_true", help="first budget only, two seeds")
    parser.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    spec = yaml.safe_load(args.sweep.read_text())
    cap = spec.get("launch", {}).get("population", 8)
    machine = machine_line()
    ceiling = measure_matmul_flops()
    results = []
    for population in (1, cap):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run_sweep(variant(spec, population, args.quick), Path(tmp)))
    sweep = args.sweep.resolve()
    name = str(sweep.relative_to(ROOT)) if sweep.is_relative_to(ROOT) else str(sweep)
    text = report(name, args.quick, machine, ceiling, results)
    print(text)
    print(json.dumps({"ceiling": ceiling, "results": results}, indent=1))
    if args.write:
        write_section(f"{SECTION}: `{args.sweep.stem}`", text)


if __name__ == "__main__":
    main()
