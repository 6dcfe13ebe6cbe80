"""Training runs end to end (issue 3): tokens/s and MFU of experiments/tiny.yaml and of a D=256 model, and
the time to resume (restore + compile + first step) against a fresh start (init + compile + first step).

    python benchmarks/bench_train.py [--write]

Each run is a separate `scaling train` process, as a user would launch it; the float32 matmul ceiling is
measured in this same run so the MFU figures can be read as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from report import machine_line, write_section

from scaling.train.mfu import measure_matmul_flops

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Training runs (issue 3)"
D256 = [
    "name=d256",
    "model.V=8192",
    "model.T=256",
    "model.D=256",
    "model.L=4",
    "model.H=4",
    "train.steps=40",
    "train.batch_size=16",
    "train.eval_every=40",
    "train.checkpoint_every=20",
    "train.log_every=10",
]


def train(config: str, out: Path, overrides: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "scaling.cli",
        "train",
        config,
        "--out",
        str(out),
        "--no-progress",
        *overrides,
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    ceiling = measure_matmul_flops()
    tiktoken = os.environ.get("TIKTOKEN_CACHE_DIR")
    d256 = D256 + (["data.encoding=gpt2:8192"] if tiktoken else ["data.encoding=bytes"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny = train("experiments/tiny.yaml", root / "tiny", [])
        fresh = train("experiments/tiny.yaml", root / "d256", d256)
        shutil.copytree(root / "d256", root / "resumed")
        shutil.rmtree(root / "resumed" / "checkpoints" / "40")
        (root / "resumed" / "summary.json").unlink()
        resumed = train("experiments/tiny.yaml", root / "resumed", d256)
    rows = []
    for name, s in (("experiments/tiny.yaml", tiny), ("D=256, L=4, T=256, V=8192", fresh)):
        achieved = s["tokens_per_second"] * s["flops_per_token"]
        cells = [
            name,
            f"{s['params']:,}",
            s["steps"],
            f"{s['tokens_per_second']:,.0f}",
            f"{achieved / 1e9:.1f}",
            f"{achieved / ceiling:.0%}",
            f"{s['mfu']:.1%}",
            f"{s['final_val_loss']:.3f}",
            f"{s['wall_seconds']:.0f}",
        ]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    text = "\n".join(
        [
            f"`python benchmarks/bench_train.py`: {machine}.",
            f"float32 matmul ceiling measured in the same run: {ceiling / 1e9:.1f} GFLOP/s.",
            "",
            "| run | params | steps | tokens/s | GFLOP/s | of ceiling | MFU | val loss | wall s |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Start-up of the D=256 run, fresh (init) against resumed from its step-20 checkpoint (restore), "
            "each a new process:",
            "",
            "| | state (init / restore) s | compile s | start to end of first step s |",
            "|---|---|---|---|",
            f"| fresh | {fresh['state_seconds']:.2f} | {fresh['compile_seconds']:.1f} | "
            f"{fresh['startup_seconds']:.1f} |",
            f"| resumed | {resumed['state_seconds']:.2f} | {resumed['compile_seconds']:.1f} | "
            f"{resumed['startup_seconds']:.1f} |",
            "",
            f"Resume / fresh start-up ratio: {resumed['startup_seconds'] / fresh['startup_seconds']:.2f}.",
        ]
    )
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
