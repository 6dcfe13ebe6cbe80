"""Checkpoints across block layouts: a run trained unrolled resumes with `model.scan_layers: true` and
continues as the uninterrupted unrolled run; a scanned checkpoint restores into an unrolled state (and
generates the same text) exactly."""

from __future__ import annotations

import shutil

import jax
import numpy as np
import optax
import pytest
import yaml

from scaling.model.config import ModelConfig
from scaling.model.layers import layers_of
from scaling.model.sharding import MeshConfig, make_mesh
from scaling.train.checkpoint import CheckpointStore
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step
from scaling.use.generate import generate, load_run
from scaling.use.sampling import SamplingConfig
from tests.helpers import finished_checkpoints, run_scaling, tiny_run_config, write_config
from tests.train.test_train_resume import losses


def test_unrolled_checkpoint_resumed_scanned_continues_the_unrolled_run(tmp_path, data_cache):
    cfg = tiny_run_config(data_cache, train={"steps": 6, "checkpoint_every": 5})
    original = tmp_path / "original"
    run_scaling("train", str(write_config(tmp_path / "a.yaml", cfg)), "--out", str(original), "--no-progress")
    assert finished_checkpoints(original) == [5, 6]

    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    shutil.rmtree(moved / "checkpoints" / "6")
    (moved / "summary.json").unlink()
    scanned = {**cfg, "model": {**cfg["model"], "scan_layers": True}}
    run_scaling(
        "train", str(write_config(tmp_path / "b.yaml", scanned)), "--out", str(moved), "--no-progress"
    )

    before, after = losses(original), losses(moved)
    assert after[5] == before[5]
    assert after[6] == pytest.approx(before[6], rel=1e-5)
    store = CheckpointStore(moved / "checkpoints", keep=1, read_only=True)
    assert [store.saved_layers(step) for step in (5, 6)] == ["unrolled", "scanned"]
    store.close()

    # The scanned checkpoint loads into either layout and greedy generation agrees.
    texts = {}
    for scan in (True, False):
        (moved / "config.yaml").write_text(
            yaml.safe_dump({**scanned, "model": {**scanned["model"], "scan_layers": scan}})
        )
        run = load_run(moved)
        assert layers_of(run.params) == ("scanned" if scan else "unrolled")
        texts[scan] = generate(run, "def ", max_new_tokens=8, sampling=SamplingConfig(temperature=0.0))
    assert texts[True] == texts[False]


def test_scanned_checkpoint_restores_into_the_unrolled_state_of_the_same_seed(tmp_path):
    """One step in each layout from the same seed; the scanned state, saved and restored unrolled, is the
    unrolled step's state (momentum SGD: its buffers hold the gradients, so they are not zeros)."""
    cfg = ModelConfig(V=64, T=8, D=16, L=3, H=2)
    tx = optax.sgd(0.1, momentum=0.9)
    mesh = make_mesh(MeshConfig())
    tokens_MxBxT1 = np.random.default_rng(0).integers(0, cfg.V, (1, 4, cfg.T + 1), dtype=np.int32)
    layouts = {scan: make_layout(cfg.replace(scan_layers=scan), tx, mesh) for scan in (True, False)}
    with jax.set_mesh(mesh):
        stepped = {}
        for scan, layout in layouts.items():
            params, opt_state = init_state(layout.model, tx, layout, seed=3)
            stepped[scan] = make_train_step(layout, tx, mesh)(params, opt_state, tokens_MxBxT1, 0, 0.1)[:2]
        store = CheckpointStore(tmp_path / "ck", keep=1)
        store.save(1, *stepped[True], {"step": 1})
        store.close()
        reader = CheckpointStore(tmp_path / "ck", keep=1, read_only=True)
        params, opt_state, meta = reader.restore(1, layouts[False])
        reader.close()
    assert meta["layers"] == "scanned" and layers_of((params, opt_state)) == "unrolled"
    for got, want in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves(stepped[False]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert [leaf.sharding for leaf in jax.tree.leaves(params)] == jax.tree.leaves(
        layouts[False].param_shardings
    )
