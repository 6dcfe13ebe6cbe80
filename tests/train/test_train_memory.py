"""The step's memory known before launch: the formula against XLA's own memory analysis of the compiled
step, remat lowering that memory but not the losses, and `scaling train` refusing a run that cannot fit
before it compiles the training loop or allocates the state."""

from __future__ import annotations

import dataclasses
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling.cli import main
from scaling.errors import UserError
from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh, microbatch_sharding, replicated
from scaling.train import loop, memory, progress
from scaling.train.memory_estimate import activation_bytes, human_bytes, run_formula
from scaling.train.memory_fit import what_would_fit
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.run_config import RunConfig, TrainConfig, load_run_config
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step
from tests.helpers import tiny_run_config, write_config

# XLA:CPU's default scheduler favours concurrency and keeps about as much under any remat policy; its
# memory-optimised one frees what remat gives back, as an accelerator's scheduler does.
MEMORY_SCHEDULER = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
ONE_DEVICE = {"data": 1, "fsdp": 1, "tensor": 1}


def compiled_step(model: ModelConfig, batch: int, options: dict | None = None):
    """The training step compiled on the abstract state (nothing allocated), and what it needs to run."""
    mesh = make_mesh(MeshConfig(), jax.devices()[:1])
    tx = make_optimizer(OptimConfig(warmup_steps=0))
    layout = make_layout(model, tx, mesh)
    rep = replicated(mesh)
    abstract = (
        layout.abstract_params,
        layout.abstract_opt_state,
        jax.ShapeDtypeStruct((1, batch, model.T + 1), jnp.int32, sharding=microbatch_sharding(mesh)),
        jax.ShapeDtypeStruct((), jnp.int32, sharding=rep),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=rep),
    )
    with jax.set_mesh(mesh):
        compiled = make_train_step(layout, tx, mesh).lower(*abstract).compile(compiler_options=options)
    return compiled, layout, tx


def formula_temp(model: ModelConfig, batch: int) -> int:
    """What the formula says XLA's temporary buffers hold: activations and the two gradient trees."""
    cfg = RunConfig(model=model, train=TrainConfig(batch_size=batch))
    estimate = run_formula(cfg, ONE_DEVICE)
    return estimate.activations + estimate.gradients


@pytest.mark.parametrize(
    ("model", "batch", "options"),
    [
        (ModelConfig(V=257, T=64, D=64, L=2, H=4), 8, None),
        (ModelConfig(V=2048, T=128, D=64, L=2, H=2), 4, None),
        (ModelConfig(V=257, T=128, D=64, L=3, H=4, remat="block"), 8, MEMORY_SCHEDULER),
    ],
    ids=["small", "vocab-heavy", "remat-block"],
)
def test_formula_is_within_2x_of_the_compiled_memory_analysis(model, batch, options):
    compiled, _, _ = compiled_step(model, batch, options)
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert 0.5 < formula_temp(model, batch) / temp < 2.0, (formula_temp(model, batch), temp)


def test_formula_grows_with_batch_and_context_and_shrinks_with_remat():
    base = ModelConfig(V=8192, T=256, D=256, L=4, H=4)
    rows = [activation_bytes(base, b) for b in (1, 2, 4, 8)]
    assert rows == sorted(rows) and rows[3] == pytest.approx(8 * rows[0], rel=1e-6)
    contexts = [activation_bytes(base.replace(T=t), 4) for t in (64, 128, 256, 512)]
    assert all(b > 2 * a for a, b in itertools.pairwise(contexts))  # attention: faster than T
    policies = [activation_bytes(base.replace(remat=r), 4) for r in ("none", "dots", "block")]
    assert policies[0] > policies[1] > policies[2]
    assert activation_bytes(base.replace(L=1, remat="block"), 4) == activation_bytes(base.replace(L=1), 4)


def test_remat_lowers_the_compiled_memory_but_not_three_steps_of_losses():
    """Three AdamW steps of each policy from one initialisation, on one batch: the same losses within
    float32 rounding, while the memory-optimised schedule's temporaries shrink with block and dots."""
    base = ModelConfig(V=257, T=64, D=32, L=2, H=2)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, base.V, (1, 8, base.T + 1), dtype=np.int32))
    temps, losses, start = {}, {}, None
    for remat in ("none", "dots", "block"):
        compiled, layout, tx = compiled_step(base.replace(remat=remat), 8, MEMORY_SCHEDULER)
        temps[remat] = compiled.memory_analysis().temp_size_in_bytes
        start = start or init_state(base, tx, layout, seed=0)
        params, opt_state = jax.tree.map(jnp.copy, start)  # the step donates its inputs
        losses[remat] = []
        for step in range(3):
            params, opt_state, metrics = compiled(
                params, opt_state, tokens, jnp.int32(step), jnp.float32(1e-2)
            )
            losses[remat].append(float(metrics["loss"]))
    assert temps["block"] < temps["none"] and temps["dots"] < temps["none"], temps
    for remat in ("dots", "block"):
        np.testing.assert_allclose(losses[remat], losses["none"], rtol=1e-6)
    assert losses["none"][2] < losses["none"][0]  # the steps did train


@pytest.fixture
def guarded(monkeypatch):
    """Fail the test if the training loop's compilation or the state's allocation is reached."""

    def never(*_, **__):
        raise AssertionError("reached after the memory check should have refused the run")

    monkeypatch.setattr(loop, "compile_step", never)
    monkeypatch.setattr(progress, "init_state", never)
    return monkeypatch


def _train(capsys, tmp_path, data_cache, **train) -> tuple[int, list[str]]:
    cfg = tiny_run_config(data_cache, train={"batch_size": 32, **train})
    config = write_config(tmp_path / "run.yaml", cfg)
    code = main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    return code, capsys.readouterr().err.strip().splitlines()


def _tiny_formula(data_cache, **train) -> int:
    cfg = tiny_run_config(data_cache)
    model = ModelConfig(**cfg["model"])
    return run_formula(RunConfig(model=model, train=TrainConfig(batch_size=32, **train)), ONE_DEVICE).total


def test_a_run_whose_step_cannot_fit_is_refused_before_compiling(tmp_path, capsys, data_cache, guarded):
    limit = _tiny_formula(data_cache) // 3  # far outside the formula's factor 2: no compilation at all
    guarded.setattr(memory, "host_available_bytes", lambda: limit)
    guarded.setattr(jax.stages.Lowered, "compile", lambda *_: pytest.fail("compiled a step"))
    code, err = _train(capsys, tmp_path, data_cache)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert "formula" in err[0] and "available on the host" in err[0], err[0]
    micro = int(re.search(r"train\.micro_batches=(\d+) would need", err[0]).group(1))
    assert _tiny_formula(data_cache, micro_batches=micro) <= limit  # the fewest that fit
    assert _tiny_formula(data_cache, micro_batches=micro // 2) > limit
    assert not (tmp_path / "run").exists()


def test_a_run_near_the_limit_is_decided_by_its_compiled_step(tmp_path, capsys, data_cache, guarded):
    cfg = load_run_config(
        write_config(tmp_path / "c.yaml", tiny_run_config(data_cache)), ["train.batch_size=32"]
    )
    mesh = make_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim)
    compiled = memory.compiled_step_estimate(make_layout(cfg.model, tx, mesh), tx, mesh, cfg)
    limit = int(0.9 * compiled.total) // jax.local_device_count()
    assert 0.5 < _tiny_formula(data_cache) / limit < 2  # within the formula's factor: compiling decides
    guarded.setattr(memory, "host_available_bytes", lambda: limit)
    code, err = _train(capsys, tmp_path, data_cache)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert f"needs {compiled.describe()}" in err[0] and "train.micro_batches=" in err[0], err[0]
    assert not (tmp_path / "run").exists()


def test_what_would_fit_names_each_change_that_fits_or_all_of_them_together():
    cfg = RunConfig(model=ModelConfig(V=8192, T=256, D=256, L=4, H=4), train=TrainConfig(batch_size=64))
    four, on_fsdp = {"data": 4, "fsdp": 1, "tensor": 1}, {"data": 1, "fsdp": 4, "tensor": 1}
    fsdp = run_formula(dataclasses.replace(cfg, mesh=MeshConfig(data=1, fsdp=4)), on_fsdp)
    micro = run_formula(dataclasses.replace(cfg, train=TrainConfig(batch_size=64, micro_batches=16)), four)
    both = run_formula(
        dataclasses.replace(cfg, train=TrainConfig(batch_size=64, micro_batches=16), mesh=MeshConfig(1, 4)),
        on_fsdp,
    )
    assert both.total < min(fsdp.total, micro.total)
    alone = what_would_fit(cfg, four, fsdp.total, 1, remat_saves=False)
    assert "mesh.fsdp=4 mesh.data=1 would need" in alone and "remat" not in alone
    together = what_would_fit(cfg, four, (both.total + min(fsdp.total, micro.total)) // 2, 1, False)
    assert together.endswith(f"together would need {human_bytes(both.total)}"), together
    assert what_would_fit(cfg, four, both.total // 2, 1, False).startswith("choose a smaller model")


def test_a_population_counts_every_members_state_and_one_steps_temporaries(monkeypatch):
    cfg = RunConfig(model=ModelConfig(V=64, T=8, D=8, L=1, H=2), train=TrainConfig(batch_size=4))
    mesh = make_mesh(MeshConfig(data=1))
    tx = make_optimizer(cfg.optim)
    layout = make_layout(cfg.model, tx, mesh)
    one = run_formula(cfg, dict(mesh.shape), remat_saves=False)
    exact = 4 * (one.params + one.optimizer) + one.gradients + one.activations  # 4 states, one step
    monkeypatch.setattr(memory, "compiled_step_estimate", lambda *_: None)  # as where a backend gives none
    monkeypatch.setattr(memory, "memory_limit", lambda: memory.MemoryLimit(exact, 1, "on the host"))
    assert memory.check_run_fits(cfg, layout, tx, mesh, members=4).total == exact
    with pytest.raises(UserError, match=r"^a population of 5 runs of the model .* needs ") as err:
        memory.check_run_fits(cfg, layout, tx, mesh, members=5)
    assert "launch.population" in str(err.value)
