"""Shared by the benchmark scripts: the machine line and section-wise updates of benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import yaml

from scaling.train.mfu import cpu_model

RESULTS = Path(__file__).parent / "RESULTS.md"


def machine_line() -> str:
    """Date, CPU, cores and load: absolute times on shared machines drift, so every figure says where from."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{now}, {cpu_model()}, {os.cpu_count()} cores, load average {load} (1/5/15 min) at the start"


def write_section(section: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) one `## ...` section, leaving the other benchmarks' sections alone."""
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    head, found, rest = content.partition(section)
    tail = ""
    if found:
        next_section = rest.find("\n## ")
        tail = rest[next_section:] if next_section >= 0 else ""
    body = f"{section}\n\n{text.rstrip()}\n"
    new = f"{head.rstrip()}\n\n{body}{tail}" if found else f"{content.rstrip()}\n\n{body}"
    path.write_text(new.rstrip() + "\n")


def train_sweep(spec: dict, path: Path, sweep_dir: Path) -> Path:
    """Write `spec` to `path`, train it (`scaling sweep run`, finished runs skipped), return results.csv."""
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    command = [sys.executable, "-m", "scaling.cli", "sweep", "run", str(path), "--out", str(sweep_dir)]
    subprocess.run([*command, "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return sweep_dir / "results.csv"


CORPORA = {
    "stdlib": "stdlib",
    "gutenberg": str(Path(__file__).resolve().parents[2] / "shared" / "data" / "gutenberg"),
}


def probe_spec(base: Path, name: str, grid: list[dict], corpus: str | None = None) -> dict:
    """The sweep file `base` as a ladder-scale probe: renamed, one seed, `grid` as its IsoFLOP grid, no
    targets, on `corpus` (a CORPORA key) when given. Callers then set what the probe varies."""
    spec = yaml.safe_load(base.read_text())
    spec["name"] = name
    spec["recipe"]["seeds"] = 1
    spec["grid"] = {"isoflop": grid}
    spec.pop("targets")
    if corpus is not None:
        spec["base"]["data"]["corpus"] = CORPORA[corpus]
    return spec


def settings_table(tables: dict, heads: list[str], lead: dict[str, Callable[[str], str]]) -> str:
    """One row per run of the first setting: the `lead` columns (header -> cell of a run name), then each
    setting's final validation loss under `heads`; a last row gives each setting's mean, which ranks them."""
    names = list(next(iter(tables.values())).index)
    lines = [
        "| " + " | ".join([*lead, *heads]) + " |",
        "|" + "---|" * (len(lead) + len(heads)),
    ]
    for name in names:
        cells = [cell(name) for cell in lead.values()] + [f"{t.loss[name]:.4f}" for t in tables.values()]
        lines.append("| " + " | ".join(cells) + " |")
    means = [f"{t.loss.mean():.4f}" for t in tables.values()]
    lines.append("| " + " | ".join(["mean"] + [""] * (len(lead) - 1) + means) + " |")
    return "\n".join(lines)


def train_settings(specs: dict, out: Path) -> dict:
    """Each setting's sweep (`specs`: setting -> spec) trained into out/<its name>, finished runs skipped;
    its results table indexed by run name, under the same setting."""
    tables = {}
    for setting, spec in specs.items():
        csv = train_sweep(spec, out / f"{spec['name']}.yaml", out / spec["name"])
        tables[setting] = pd.read_csv(csv).set_index("name")
    return tables


def probe_main(
    doc: str,
    default_out: Path,
    measure: Callable[..., str],
    section: str,
    head: str,
    corpora: Sequence[str] = (),
) -> None:
    """The command line of a ladder-scale probe: train into --out (resumable), print the table, and with
    --write put it into RESULTS.md under `section`, after `head` (`{machine}` and `{corpus}` filled in).
    With `corpora`, `--corpus` picks one (the first by default), passed to `measure(out, corpus)`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if corpora:
        parser.add_argument("--corpus", choices=corpora, default=corpora[0])
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    corpus = getattr(args, "corpus", None)
    text = measure(args.out) if corpus is None else measure(args.out, corpus)
    print(text)
    if args.write:
        filled = {"machine": machine, "corpus": corpus}
        write_section(section.format(**filled), f"{head.format(**filled)}\n\n{text}")
