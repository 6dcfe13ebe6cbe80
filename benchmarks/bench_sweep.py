"""Run the CPU IsoFLOP sweep and measure its overhead: wall time against the runs' pure step time.

    python benchmarks/bench_sweep.py [--sweep experiments/cpu_isoflop.yaml] [--out DIR] [--write]

The sweep must start from an empty directory (a resumed sweep would not be timed whole). Step time is what
each trainer measured around its steps (summary: steps x tokens per step / tokens_per_second); the
overhead is everything else a worker spends: process start, data loading, compilation, evaluation and
checkpoints, plus workers idle at the end. `--write` adds the figures to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from report import write_section

from scaling.train.mfu import cpu_model

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Sweeps (issue 5)"


def measure(sweep: Path, out: Path) -> dict:
    from scaling.sweep.plan import plan
    from scaling.sweep.spec import load_sweep

    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: the benchmark times a sweep from scratch")
    spec = load_sweep(sweep)
    runs = plan(spec)
    load_before = os.getloadavg()
    start = time.perf_counter()
    command = [sys.executable, "-m", "scaling.cli", "sweep", "run", str(sweep), "--out", str(out)]
    subprocess.run([*command, "--no-progress"], check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    per_run = []
    for run in runs:
        s = json.loads((out / run.name / "summary.json").read_text())
        step_seconds = s["steps"] * run.config.tokens_per_step / s["tokens_per_second"]
        per_run.append(
            {
                "name": run.name,
                "flops": s["flops"],
                "step_seconds": step_seconds,
                "run_wall_seconds": s["wall_seconds"],
                "compile_seconds": s["compile_seconds"],
                "mfu": s["mfu"],
            }
        )
    steps_total = sum(r["step_seconds"] for r in per_run)
    workers = spec.launch.workers
    return {
        "sweep": str(sweep.relative_to(ROOT)) if sweep.is_relative_to(ROOT) else str(sweep),
        "runs": per_run,
        "workers": workers,
        "wall_seconds": wall,
        "step_seconds_total": steps_total,
        "overhead": workers * wall / steps_total - 1,
        "in_trainer_overhead": sum(r["run_wall_seconds"] for r in per_run) / steps_total - 1,
        "compile_seconds_mean": sum(r["compile_seconds"] for r in per_run) / len(per_run),
        "compile_seconds_max": max(r["compile_seconds"] for r in per_run),
        "load_before": load_before,
        "load_after": load_after,
    }


def report(result: dict) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = cpu_model()
    lines = [
        f"### `{result['sweep']}`: {date}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        f"- {len(result['runs'])} runs on {result['workers']} workers: wall time "
        f"{result['wall_seconds'] / 60:.1f} min; pure step time summed over runs "
        f"{result['step_seconds_total'] / 60:.1f} min.",
        f"- Overhead (workers x wall / step time - 1): {100 * result['overhead']:.0f}% (target <= 30%); "
        f"inside the trainers alone (their wall time / step time - 1): "
        f"{100 * result['in_trainer_overhead']:.0f}%.",
        f"- Compile time per run: mean {result['compile_seconds_mean']:.1f} s, "
        f"max {result['compile_seconds_max']:.1f} s.",
        f"- Load average (1/5/15 min) before {_load(result['load_before'])}, after "
        f"{_load(result['load_after'])} (2 cores: a load above ~2 means other work shared them).",
        "",
        "| run | FLOPs | step s | run wall s | compile s | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['name']} | {r['flops']:.3g} | {r['step_seconds']:.0f} | {r['run_wall_seconds']:.0f} | "
            f"{r['compile_seconds']:.1f} | {r['mfu']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "experiments" / "cpu_isoflop.yaml")
    parser.add_argument("--out", type=Path, help="empty sweep directory (default: a temporary one)")
    parser.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.sweep.resolve(), (args.out or Path(tmp) / "sweep").resolve())
    text = report(result)
    print(text)
    print(json.dumps(result, indent=1))
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
