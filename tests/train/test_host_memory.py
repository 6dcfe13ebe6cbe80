"""keep_freed_memory: a jitted function's 128 MiB of temporaries, freed and taken again call after call,
often reuse pages already touched (no page faults), where glibc's defaults fault every call's in anew. Not
every call: a call that finds the freed block still in use grows the heap (the trainer's step settles at two
copies, then faults no more). Each side runs in its own process: the setting is process-wide and must come
before JAX starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scaling.train.host_memory import keep_freed_memory

CHILD = """
import json, resource, sys
from scaling.train.host_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
import jax, jax.numpy as jnp
x = jnp.ones((2048, 8192), jnp.float32)
last_row = jax.jit(lambda x: jnp.cumsum(x * 2.0, axis=0)[-1])  # 128 MiB of temporaries, a small result
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(last_row(x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _faults(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_result_pages_are_reused() -> None:
    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    pages = 2 * 2048 * 8192 * 4 // 4096
    kept, default = _faults("keep"), _faults("default")
    assert kept["kept"] and not default["kept"]
    assert min(default["faults"][1:]) > pages // 2  # glibc's defaults: every call faults its temporaries in
    assert sum(n < pages // 100 for n in kept["faults"][1:]) >= 3
