"""Approach-3 benchmark: 4500-start grid + 1000 bootstrap refits on ~250 runs, ours vs a scipy loop.

    python benchmarks/bench_fit.py [--runs 250] [--bootstrap 1000] [--skip-baseline]

Ours is timed end to end as a user pays it (including XLA compilation), wall and process CPU time. The table
is synthetic, drawn from the Besiroglu et al. (2024) refit of Chinchilla with 1% log-normal noise, and
seeded, so both fitters see the same runs and the same bootstrap resamples.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from report import machine_line

from scaling.fitting.chinchilla import fit_chinchilla, hoffmann_grid
from scaling.fitting.table import RunTable, TableSpec

TRUE = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def synthetic_table(n: int, seed: int = 0) -> RunTable:
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(5e11), n))
    L = (TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]) * np.exp(
        rng.normal(0, 0.01, n)
    )
    return RunTable(
        spec=TableSpec(source="synthetic"),
        names=tuple(f"run{i}" for i in range(n)),
        N=N,
        D=D,
        C=6 * N * D,
        L=L,
        run_dirs=(None,) * n,
        budget=None,
        sha256="",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=250)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    table = synthetic_table(args.runs)
    report = {
        "machine": machine_line(),
        "python": platform.python_version(),
        "runs": args.runs,
        "bootstrap": args.bootstrap,
    }

    wall, cpu = time.perf_counter(), time.process_time()
    ours = fit_chinchilla(table, n_boot=args.bootstrap)
    report["ours"] = {
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "objective": ours.objective,
        "params": ours.params,
        "alpha_interval": ours.intervals["alpha"],
    }
    if not args.skip_baseline:
        from scipy_baseline import fit_scipy

        wall, cpu = time.perf_counter(), time.process_time()
        base = fit_scipy(table.N, table.D, table.L, hoffmann_grid(), args.bootstrap)
        x = base["x"]
        alphas = base["boot_x"][:, 2]
        report["baseline"] = {
            "wall_seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
            "grid_wall_seconds": base["grid_seconds"],
            "objective": base["objective"],
            "params": {"E": np.exp(x[4]), "A": np.exp(x[0]), "B": np.exp(x[1]), "alpha": x[2], "beta": x[3]},
            "alpha_interval": list(np.percentile(alphas, [2.5, 97.5])),
        }
        b, o = report["baseline"], report["ours"]
        report["objective_relative_difference"] = (o["objective"] - b["objective"]) / b["objective"]
        report["speedup_wall"] = b["wall_seconds"] / o["wall_seconds"]
        report["speedup_cpu"] = b["cpu_seconds"] / o["cpu_seconds"]
    print(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
