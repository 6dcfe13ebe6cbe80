"""keep_freed_memory: a 128 MiB block, freed and taken again, reuses the pages already touched (no page
faults), where glibc's defaults serve it from a fresh mmap that faults every page in anew; so does a block
over 2 GiB (XLA's temporaries at D=256 with two steps in flight), which a trim threshold would hand back.
One thread and one size, so the reuse is certain; what it buys XLA's step is measured by
benchmarks/bench_peer.py. Each side runs in its own process: the setting is process-wide and must come
before JAX starts."""

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
for _ in range(int(sys.argv[3])):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(int(sys.argv[2]) * 2**18, np.float32)  # this many MiB through malloc
    block.fill(1.0)  # touch every page
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _faults(mode: str, mib: int = 128, blocks: int = 12) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SCALING_SYSTEM_MALLOC"}
    if mode == "opted-out":
        env["SCALING_SYSTEM_MALLOC"] = "1"
    command = [sys.executable, "-c", CHILD, "default" if mode == "default" else "keep", str(mib), str(blocks)]
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_over_2_gib_are_kept() -> None:
    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    kept = _faults("keep", mib=2304, blocks=3)
    first = kept["faults"][0]
    assert first > 2304 * 2**20 // 2**21  # the first block faulted in (at least one fault per 2 MiB)
    assert max(kept["faults"][1:]) < first // 20  # never trimmed: later blocks reuse its pages
