"""keep_freed_memory: a 128 MiB block, freed and taken again, reuses the pages already touched (no page
faults), where glibc's defaults serve it from a fresh mmap that faults every page in anew. One thread and
one size, so the reuse is certain; what it buys XLA's step is measured by benchmarks/bench_peer.py. Each
side runs in its own process: the setting is process-wide and must come before JAX starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scaling.train.host_memory import keep_freed_memory

CHILD = """
import json, resource, sys
import numpy as np
from scaling.train.host_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(32 * 2**20, np.float32)  # 128 MiB through malloc
    block.fill(1.0)  # touch every page
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _faults(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SCALING_SYSTEM_MALLOC"}
    if mode == "opted-out":
        env["SCALING_SYSTEM_MALLOC"] = "1"
    command = [sys.executable, "-c", CHILD, "default" if mode == "default" else "keep"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_result_pages_are_reused() -> None:
    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    kept, default, opted_out = _faults("keep"), _faults("default"), _faults("opted-out")
    assert kept["kept"] and not default["kept"] and not opted_out["kept"]
    first = default["faults"][0]  # (huge pages, where numpy asks for them, make this a few hundred)
    assert first > 100 and min(default["faults"][1:]) > first // 2  # defaults: every block faulted in anew
    assert max(kept["faults"][1:]) < first // 20  # kept: the first block's pages serve every later one
    assert min(opted_out["faults"][1:]) > first // 2  # SCALING_SYSTEM_MALLOC=1: glibc's defaults again
