"""Bad input fails with one line naming the problem, and leaves existing files as they were."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jax
import optax
import pytest

from scaling.cli import main
from scaling.errors import UserError
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.train.checkpoint import CheckpointStore
from scaling.train.state import make_layout
from tests.helpers import tiny_run_config, write_config
from tests.use.helpers import TINY, random_params, save_run


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["train", *args, "--no-progress"])
    err = capsys.readouterr().err.strip()
    return code, err


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_cache) -> tuple[Path, dict]:
    """A finished 2-step run with a checkpoint, shared by the resume-error tests."""
    root = tmp_path_factory.mktemp("trained")
    cfg = tiny_run_config(data_cache, train={"steps": 2, "checkpoint_every": 2})
    path = write_config(root / "run.yaml", cfg)
    assert main(["train", str(path), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run", cfg


def copy_run(run: Path, tmp_path: Path, *, finished: bool = True) -> Path:
    """A copy of the shared trained run to damage; without its summary it looks interrupted, so the
    trainer goes on to read its checkpoint."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    if not finished:
        (copy / "summary.json").unlink()
    return copy


def expect_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"model": {"widht": 64}}, ["unknown key widht", "valid keys: V, T, D"]),
        ({"train": {"steps": "many"}}, ["train.steps", "expected an integer"]),
        ({"data": {"corpus": "/no/such/corpus.txt"}}, ["/no/such/corpus.txt"]),
        ({"model": {"T": 2048}, "data": {"max_bytes": 20_000}}, ["validation"]),
        ({"mesh": {"data": 3}}, ["mesh"]),
    ],
)
def test_bad_config_is_one_line(tmp_path, capsys, data_cache, change, needles):
    path = write_config(tmp_path / "bad.yaml", tiny_run_config(data_cache, **change))
    out = tmp_path / "out"
    expect_one_line_error(*run_cli(capsys, str(path), "--out", str(out)), *needles)
    assert not (out / "checkpoints").exists()


def test_empty_corpus(tmp_path, capsys, data_cache):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("\n\n")
    path = write_config(
        tmp_path / "r.yaml", tiny_run_config(data_cache, data={"corpus": str(tmp_path / "empty")})
    )
    expect_one_line_error(*run_cli(capsys, str(path), "--out", str(tmp_path / "o")), "empty")


def test_encoding_differs_from_checkpoint(tmp_path, capsys, trained_run, data_cache):
    run, cfg = trained_run
    copy = copy_run(run, tmp_path)
    before = snapshot(copy)
    # Same config file contents otherwise; the run directory's config check names the changed key.
    changed = {**cfg, "data": {**cfg["data"], "encoding": "gpt2:260"}}
    path = write_config(tmp_path / "r.yaml", changed)
    code, err = run_cli(capsys, str(path), "--out", str(copy))
    if "gpt2 BPE" in err or "TIKTOKEN_CACHE_DIR" in err:
        pytest.skip("gpt2 BPE files unavailable here")
    expect_one_line_error(code, err, "data.encoding")
    assert snapshot(copy) == before


def test_checkpoint_encoding_checked_even_if_config_yaml_agrees(tmp_path, capsys, trained_run):
    run, cfg = trained_run
    copy = copy_run(run, tmp_path, finished=False)
    meta_files = list((copy / "checkpoints").glob("*/meta/*.json")) + list(
        (copy / "checkpoints").glob("*/meta/metadata")
    )
    assert meta_files, sorted(str(p) for p in (copy / "checkpoints").rglob("*"))
    for meta_path in meta_files:
        text = meta_path.read_text()
        if '"encoding"' in text:
            meta_path.write_text(text.replace('"bytes"', '"gpt2"'))
    before = snapshot(copy)
    path = write_config(tmp_path / "r.yaml", cfg)
    expect_one_line_error(*run_cli(capsys, str(path), "--out", str(copy)), "encoding", "'gpt2'")
    assert snapshot(copy) == before


def test_truncated_checkpoint(tmp_path, capsys, trained_run):
    run, cfg = trained_run
    copy = copy_run(run, tmp_path, finished=False)
    for f in (copy / "checkpoints").rglob("*"):
        if f.is_file() and f.stat().st_size > 64 and "state" in f.parts:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    before = snapshot(copy)
    path = write_config(tmp_path / "r.yaml", cfg)
    expect_one_line_error(*run_cli(capsys, str(path), "--out", str(copy)), "corrupted or truncated")
    assert snapshot(copy) == before


def test_run_directory_of_another_config(tmp_path, capsys, trained_run):
    run, cfg = trained_run
    copy = copy_run(run, tmp_path)
    before = snapshot(copy)
    other = {**cfg, "model": {**cfg["model"], "D": 64}}
    path = write_config(tmp_path / "r.yaml", other)
    expect_one_line_error(*run_cli(capsys, str(path), "--out", str(copy)), "different config", "model.D")
    assert snapshot(copy) == before
    assert json.loads((copy / "summary.json").read_text())["status"] == "completed"


def test_checkpoint_of_another_state_layout(tmp_path):
    """A checkpoint whose optimizer state has another tree (an SGD run, or an older scaling) is named as
    such, not as corrupted."""
    run = save_run(tmp_path / "run", random_params(TINY)[1])
    mesh = make_mesh(MeshConfig())
    store = CheckpointStore(run / "checkpoints", keep=1, read_only=True)
    with jax.set_mesh(mesh), pytest.raises(UserError, match="laid out differently"):
        store.restore(7, make_layout(TINY, optax.sgd(0.1, momentum=0.9), mesh))
