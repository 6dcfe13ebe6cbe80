"""Failures of the world around a run (a full disk, a damaged checkpoint, too little memory, an unwritable
--out, SIGTERM at start-up) end with one line on stderr and lose nothing already recorded."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling.cli import main
from scaling.errors import UserError
from scaling.train import progress
from scaling.train.checkpoint import CheckpointStore, CheckpointWriteFailed
from scaling.train.run_dir import DROPPED_METRICS_FILE, RunDir
from tests.helpers import REPO, run_env, scaling_cmd, tiny_run_config, write_config

STEPS = {"steps": 12, "checkpoint_every": 4, "keep_checkpoints": 3}


def hashes(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def train_cli(capsys, config: Path, out: Path, *overrides: str) -> tuple[int, list[str]]:
    code = main(["train", str(config), "--out", str(out), "--no-progress", *overrides])
    return code, capsys.readouterr().err.strip().splitlines()


def one_error(lines: list[str], *needles: str) -> str:
    """The single stderr line, an `error:` one holding every needle."""
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def losses(run: Path, name: str = "metrics.jsonl") -> dict[int, float]:
    rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
    return {row["step"]: row["train_loss"] for row in rows}


def status(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["status"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_cache) -> tuple[Path, Path]:
    """An uninterrupted 12-step run with checkpoints 4, 8 and 12 (the reference), and its config."""
    root = tmp_path_factory.mktemp("straight")
    config = write_config(root / "run.yaml", tiny_run_config(data_cache, train=STEPS))
    assert main(["train", str(config), "--out", str(root / "run"), "--no-progress"]) == 0
    assert sorted(int(p.name) for p in (root / "run" / "checkpoints").iterdir()) == [4, 8, 12]
    return root / "run", config


def rewound(straight_run: Path, tmp_path: Path, *remove: int) -> Path:
    """A copy of the reference run as if killed after its checkpoint before `remove`."""
    copy = tmp_path / "run"
    shutil.copytree(straight_run, copy)
    (copy / "summary.json").unlink()
    for step in remove:
        shutil.rmtree(copy / "checkpoints" / str(step))
    return copy


def with_file_size_limit(command: list[str]) -> list[str]:
    """`command` under `ulimit -f` with SIGXFSZ ignored: files stop growing at 16 KiB with EFBIG, like a
    full disk for every checkpoint (its `_sharding` and `_METADATA` files alone are ~28 and ~36 KB, and orbax
    splits the arrays into data files of varying sizes, so a larger limit let some checkpoints through)
    while logs and metrics still fit."""
    return ["bash", "-c", 'trap "" XFSZ; ulimit -f 16; exec "$@"', "bash", *command]


def test_disk_full_stops_the_run_keeps_the_last_checkpoint_and_resumes_exactly(tmp_path, capsys, straight):
    reference, config = straight
    run = rewound(reference, tmp_path, 8, 12)
    good = {k: v for k, v in hashes(run).items() if k.startswith("checkpoints/4/")}
    env = {**run_env(), "JAX_COMPILATION_CACHE_DIR": ""}
    full = subprocess.run(
        with_file_size_limit(scaling_cmd("train", str(config), "--out", str(run), "--no-progress")),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    lines = [line for line in full.stderr.splitlines() if not line.startswith("resuming from step 4")]
    one_error(lines, "checkpoint 8 could not be written", "EFBIG", "last good checkpoint is step 4")
    assert status(run) == "failed"
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]
    assert {k: v for k, v in hashes(run).items() if k.startswith("checkpoints/4/")} == good
    # Tiny steps outrun the write, so how soon it stopped is the next test's to check.

    code, err = train_cli(capsys, config, run)
    assert code == 0 and len(err) == 1 and DROPPED_METRICS_FILE in err[0], err
    assert losses(run) == losses(reference)  # bitwise: the resumed run replays the uninterrupted one
    dropped = (run / DROPPED_METRICS_FILE).read_text().splitlines()
    assert len(dropped) == 8 + max(losses(run, DROPPED_METRICS_FILE)) - 4  # both sessions' rows after 4


def test_failed_save_is_reported_once_the_write_ends_and_the_earlier_checkpoint_stays(tmp_path):
    """keep=1: the failed save must not have garbage-collected the only good checkpoint."""
    store = CheckpointStore(tmp_path / "ck", keep=1)
    tree = {"w": jnp.asarray(np.random.default_rng(0).standard_normal(200_000, dtype=np.float32))}
    store.save(1, tree, {}, {"step": 1})
    store.wait()
    previous = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, previous[0][1]))
    try:
        store.save(2, tree, {}, {"step": 2})
        deadline = time.monotonic() + 60
        with pytest.raises(CheckpointWriteFailed, match=r"checkpoint 2 .*EFBIG.*step 1"):
            while time.monotonic() < deadline:
                store.check_saved()
                time.sleep(0.01)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous[0])
        signal.signal(signal.SIGXFSZ, previous[1])
    assert store.all_steps() == [1]
    store.close()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
    reader = CheckpointStore(tmp_path / "ck", keep=1, read_only=True)
    assert reader.all_steps() == [1]
    np.testing.assert_array_equal(reader.restore_params(1, abstract)["w"], tree["w"])


def test_a_failed_metrics_write_fails_the_run_in_one_line(tmp_path, capsys, straight, monkeypatch):
    _, config = straight
    real = RunDir.append_metrics

    def full_at_step_3(self, row):
        if row["step"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.metrics_path))
        real(self, row)

    monkeypatch.setattr(RunDir, "append_metrics", full_at_step_3)
    code, err = train_cli(capsys, config, tmp_path / "run")
    assert code == 1
    one_error(err, "metrics.jsonl: No space left on device")
    assert status(tmp_path / "run") == "failed" and sorted(losses(tmp_path / "run")) == [1, 2]


def test_resume_sets_later_rows_and_unreadable_lines_aside(tmp_path, caplog, monkeypatch):
    # An in-process train earlier routed "scaling" to its own handlers only; caplog listens at the root.
    monkeypatch.setattr(logging.getLogger("scaling"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("scaling"), "propagate", True)
    run = RunDir(tmp_path)
    rows = [json.dumps({"step": s, "train_loss": s / 10}) for s in range(1, 7)]
    lines = [*rows[:2], '{"step": 3, "train_lo', *rows[2:], '{"step": 7']  # damage, then a kill's cut
    run.metrics_path.write_text("\n".join(lines))
    with caplog.at_level(logging.WARNING, logger="scaling"):
        run.truncate_metrics(4)
    assert run.metrics_path.read_text().splitlines() == rows[:4]
    assert (tmp_path / DROPPED_METRICS_FILE).read_text().splitlines() == [lines[2], *rows[4:], lines[-1]]
    assert "2 metric rows" in caplog.text and "2 unreadable lines" in caplog.text
    run.truncate_metrics(4)  # nothing more to drop: the file aside is not touched again
    assert len((tmp_path / DROPPED_METRICS_FILE).read_text().splitlines()) == 4


def test_corrupt_latest_checkpoint_falls_back_and_is_kept_aside(tmp_path, capsys, straight):
    reference, config = straight
    run = rewound(reference, tmp_path)
    for f in (run / "checkpoints" / "12" / "state" / "ocdbt.process_0").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    damaged = {k.split("/", 2)[2]: v for k, v in hashes(run).items() if k.startswith("checkpoints/12/")}
    code, err = train_cli(capsys, config, run)
    assert code == 0, err
    assert len(err) == 2 and not any("Traceback" in line for line in err), err  # and the rows' warning
    (warning,) = [line for line in err if "checkpoint 12" in line]
    assert "is unreadable" in warning and "resuming from checkpoint 8" in warning
    assert "bound method" not in warning and "pybind11" not in warning
    kept = run / "checkpoints.corrupt" / "12"
    assert {k.split("/", 1)[1]: v for k, v in hashes(kept.parent).items()} == damaged
    assert losses(run) == losses(reference)


def test_a_model_too_large_is_one_line_and_leaves_nothing(tmp_path, capsys, straight):
    _, config = straight
    out = tmp_path / "run"
    code, err = train_cli(capsys, config, out, "model.D=65536")
    assert code == 2
    one_error(err, "model.D=65536", "parameters", "smaller model")
    assert not out.exists()


def test_out_of_memory_at_init_leaves_no_directory_that_blocks_another_config(
    tmp_path, capsys, straight, monkeypatch
):
    _, config = straight
    out = tmp_path / "run"

    def exhausted(*_):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 68719476736 bytes.")

    with monkeypatch.context() as patch:
        patch.setattr(progress, "init_state", exhausted)
        code, err = train_cli(capsys, config, out)
    assert code == 2
    one_error(err, "out of memory", "model.D=32", "train.micro_batches")
    assert not out.exists()
    assert train_cli(capsys, config, out, "model.D=16", "train.steps=1")[0] == 0


def test_a_run_directory_that_never_trained_takes_another_config(tmp_path):
    """What a start-up killed outright (SIGKILL, an allocator abort) leaves must not block the rerun."""
    run = RunDir(tmp_path / "run")
    run.claim({"model": {"D": 65536}})
    run.checkpoint_dir.mkdir()
    run.claim({"model": {"D": 64}})
    assert run.read_config() == {"model": {"D": 64}}
    run.append_metrics({"step": 1})
    with pytest.raises(UserError, match=r"different config \(differs in: model.D\)"):
        run.claim({"model": {"D": 32}})


@pytest.mark.parametrize("corpus", ["missing", "empty"])
def test_data_errors_leave_no_run_directory(tmp_path, capsys, data_cache, corpus):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("\n\n")
    data = {"corpus": str(tmp_path / corpus)}
    config = write_config(tmp_path / "r.yaml", tiny_run_config(data_cache, data=data))
    code, err = train_cli(capsys, config, tmp_path / "run")
    assert code == 2
    one_error(err, corpus)
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_or_under_one(tmp_path, capsys, straight):
    _, config = straight
    (tmp_path / "file").write_text("keep me")
    for out, needle in [("file", "is not a directory"), ("file/run", "Not a directory")]:
        code, err = train_cli(capsys, config, tmp_path / out)
        assert code == 2
        one_error(err, str(tmp_path / out), needle)
    assert (tmp_path / "file").read_text() == "keep me"


def test_unwritable_out_and_lock(tmp_path, capsys, straight, monkeypatch):
    """As root nothing is unwritable by mode, so the file system's refusals are simulated."""
    _, config = straight
    real_mkdir, real_open = Path.mkdir, Path.open

    def refuse_mkdir(self, *args, **kwargs):
        if self == tmp_path / "denied":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    def read_only_lock(self, *args, **kwargs):
        if self.name == ".lock":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_mkdir)
    code, err = train_cli(capsys, config, tmp_path / "denied")
    assert code == 2
    one_error(err, "cannot create run directory", "Permission denied")
    monkeypatch.setattr(Path, "open", read_only_lock)
    code, err = train_cli(capsys, config, tmp_path / "ro")
    assert code == 2
    one_error(err, "cannot lock run directory", "Read-only file system")


@pytest.mark.parametrize("value", ["optim.lr=.inf", "optim.lr=1e999", "optim.lr=-.inf", "model.dropout=.nan"])
def test_non_finite_numbers_are_refused(tmp_path, capsys, straight, value):
    _, config = straight
    code, err = train_cli(capsys, config, tmp_path / "run", value)
    assert code == 2
    one_error(err, value.split("=")[0], "expected a finite number")
    assert not (tmp_path / "run").exists()


def test_sigterm_during_startup_ends_at_once_and_the_run_reruns(tmp_path, capsys, straight):
    _, config = straight
    out = tmp_path / "run"
    proc = subprocess.Popen(
        scaling_cmd("train", str(config), "--out", str(out), "--no-progress"),
        env={**run_env(), "JAX_COMPILATION_CACHE_DIR": ""},  # a real compile: start-up lasts seconds
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not out.exists():  # the trainer has started: loading data, then compiling
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 8  # the next start-up check, or the 3 s watchdog, on a busy machine
    assert proc.returncode == 143, err
    assert err.splitlines() == [err.strip()] and err.startswith("interrupted: SIGTERM during start-up")
    assert not out.exists() or not RunDir(out).trained()
    assert train_cli(capsys, config, out)[0] == 0
