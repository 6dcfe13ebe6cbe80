"""Where the learning-rate optimum sits across the CPU ladder's widths: the sweep behind the width rule.

    python benchmarks/bench_lr_width.py [--out DIR] [--write]

Trains ladder-scale runs only (budgets <= 1e11 FLOPs, the wsd recipe of experiments/cpu_ladder_wsd.yaml
without branches, one seed) at several multiples of that recipe's peak-LR rule: 1.25e10 and 1e11 FLOPs at
three sizes each (x0.35-2.8), and 5e10 FLOPs at three sizes (x0.5-4); each is one `scaling sweep run`, so a
rerun skips what is trained. Per (budget, size), the optimum is the vertex of a parabola in log lr through
the best rate and its two neighbours (at the sweep's edge: the best rate, marked, left out of the fit).
Reports the power of D that the interior optima follow and the muP constant c of lr = c / D (geometric
mean of lr_opt * D). `--write` puts the table into benchmarks/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from report import probe_main, train_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE_SPEC = ROOT / "experiments" / "cpu_ladder_wsd.yaml"
SETS = (
    ("lr", "out", (0.35, 0.7, 1.0, 1.4, 2.8), [(1.25e10, 8.88e2, 7.3e3), (1.0e11, 1.9e3, 1.98e4)]),
    ("b", "bout", (0.5, 1.0, 2.0, 4.0), [(5.0e10, 1.9e3, 1.28e4)]),
)


@dataclass(frozen=True)
class Optimum:
    name: str
    D: int
    steps: int
    lr: float
    edge: bool
    losses: tuple[float, ...]


def sweep_spec(name: str, multiple: float, budgets) -> dict:
    spec = yaml.safe_load(BASE_SPEC.read_text())
    spec["name"] = name
    spec["recipe"]["lr"]["peak"] = spec["recipe"]["lr"]["peak"] * multiple
    spec["recipe"].update(branching=False, seeds=1)
    spec["grid"] = {"isoflop": [{"flops": c, "params": [lo, hi], "points": 3} for c, lo, hi in budgets]}
    spec.pop("targets")
    return spec


def run_sweeps(out: Path) -> list[Path]:
    """Train every sweep (skipping finished runs) and return their results tables."""
    tables = []
    for prefix, folder, multiples, budgets in SETS:
        for multiple in multiples:
            spec = sweep_spec(f"{prefix}{multiple}", multiple, budgets)
            tables.append(train_sweep(spec, out / f"{prefix}{multiple}.yaml", out / f"{folder}{multiple}"))
    return tables


def optima(tables: list[Path]) -> list[Optimum]:
    runs = pd.concat([pd.read_csv(t) for t in tables])
    found = []
    for name, group in runs.groupby("name"):
        group = group.sort_values("lr")
        log_lr, loss = np.log(group.lr.to_numpy()), group.loss.to_numpy()
        best = int(np.argmin(loss))
        edge = best in (0, len(loss) - 1)
        lr = float(np.exp(log_lr[best]))
        if not edge:
            a, b, _ = np.polyfit(log_lr[best - 1 : best + 2], loss[best - 1 : best + 2], 2)
            lr = float(np.exp(-b / (2 * a)))
        found.append(Optimum(name, int(group.D.iloc[0]), int(group.steps.iloc[0]), lr, edge, tuple(loss)))
    return found


def report(found: list[Optimum]) -> str:
    lines = [
        "| run | D | steps | losses (low to high lr) | lr_opt | lr_opt x D |",
        "|---|---|---|---|---|---|",
    ]
    for o in sorted(found, key=lambda o: (o.D, o.name)):
        losses = ", ".join(f"{v:.4f}" for v in o.losses)
        mark = " (edge)" if o.edge else ""
        lines.append(f"| {o.name} | {o.D} | {o.steps} | {losses} | {o.lr:.4f}{mark} | {o.lr * o.D:.3f} |")
    inner = [o for o in found if not o.edge]
    width, lr = np.array([o.D for o in inner], float), np.array([o.lr for o in inner])
    power = np.polyfit(np.log(width), np.log(lr), 1)[0]
    c = float(np.exp(np.mean(np.log(lr * width))))
    spread = float(np.std(np.log(lr * width)))
    lines += [
        "",
        f"Interior optima ({len(inner)}): lr_opt ~ D^{power:.2f}; muP constant c = {c:.3f} in lr = c / D "
        f"(log standard deviation of lr_opt x D: {spread:.2f}).",
    ]
    return "\n".join(lines)


def main() -> None:
    probe_main(
        __doc__,
        ROOT / "runs" / "bench_lr_width",
        lambda out: report(optima(run_sweeps(out))),
        "## Learning rate by width (issue 10)",
        "`python benchmarks/bench_lr_width.py`: {machine}; the wsd recipe of `cpu_ladder_wsd.yaml`.",
    )


if __name__ == "__main__":
    main()
