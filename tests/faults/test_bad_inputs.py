"""Every bad input of `cases.CASES`: exit code 2, one `error:` line on stderr, no traceback, and not a
byte of the work directory changed (no file written, removed or half-written).

Run in process (`scaling.cli.main`) so the table stays cheap; `test_the_real_entry_point_agrees` runs a
few through `python -m scaling.cli` to show the process's own stderr is the same one line.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from scaling.cli import main
from tests.faults.cases import CASES, BadInput
from tests.helpers import run_env, scaling_cmd


def _lay_out(case: BadInput, work: Path, cache: Path) -> None:
    for relative, content in case.files.items():
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{cache}", str(cache)))
    if case.prepare is not None:
        case.prepare(work)


def _snapshot(work: Path) -> dict[str, str]:
    """Every path under `work` with the sha256 of its bytes (directories as 'dir'), except the empty
    `.lock` a trainer takes in a run directory before it reads it (a lock, not data)."""
    return {
        str(p.relative_to(work)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(work.rglob("*"))
        if p.name != ".lock" or p.stat().st_size
    }


def _argv(case: BadInput, work: Path) -> list[str]:
    return [arg.replace("{w}", str(work)) for arg in case.argv]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, tmp_path, data_cache, monkeypatch, capfd):
    work = tmp_path / "work"
    work.mkdir()
    _lay_out(case, work, data_cache)
    before = _snapshot(work)
    monkeypatch.chdir(work)
    try:
        code = main(_argv(case, work))
    except SystemExit as exit_:  # argparse exits
        code = exit_.code
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in out + err, err
    assert code == 2, f"exit code {code}; stderr:\n{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.needle in lines[0], err
    assert _snapshot(work) == before


REAL_PROCESS = [
    c for c in CASES if c.id in ("train: unknown key", "predict: parameter is text", "fit: unknown law")
]


@pytest.mark.parametrize("case", REAL_PROCESS, ids=[case.id for case in REAL_PROCESS])
def test_the_real_entry_point_agrees(case, tmp_path, data_cache):
    work = tmp_path / "work"
    work.mkdir()
    _lay_out(case, work, data_cache)
    before = _snapshot(work)
    result = subprocess.run(
        scaling_cmd(*_argv(case, work)), cwd=work, env=run_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert _snapshot(work) == before
