"""Cooldown branches of a wsd run: a branch equals the same wsd run trained alone, bit for bit; the stable run
is not changed by keeping its branch points; a branch killed mid-cooldown resumes exactly; a finished branch
is never trained again; and a branch cannot start from a run it does not belong to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import (
    finished_checkpoints,
    kill_at_checkpoint,
    run_scaling,
    start_scaling,
    tiny_run_config,
    write_config,
)
from tests.train.test_train_resume import losses

WSD = {
    "schedule": "wsd",
    "warmup_steps": 2,
    "decay_fraction": 0.2,
    "decay_shape": "1-sqrt",
    "min_lr_ratio": 0.0,
}


def _config(tmp_path: Path, data_cache: Path, steps: int, branches: list[float]) -> Path:
    cfg = tiny_run_config(
        data_cache, optim=WSD, train={"steps": steps, "branches": branches, "eval_every": 10}
    )
    return write_config(tmp_path / f"wsd_{steps}_{len(branches)}.yaml", cfg)


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_branch_equals_the_wsd_run_of_its_length_trained_alone(tmp_path, data_cache):
    cfg = _config(tmp_path, data_cache, steps=30, branches=[0.5, 20 * 8 * 32])  # ends at steps 15 and 20
    main = tmp_path / "main"
    result = run_scaling("train", str(cfg), "--out", str(main), "--no-progress")
    assert [json.loads(line).get("branch") for line in result.stdout.splitlines()] == [
        None,
        "t_step15",
        "t_step20",
    ]
    plain = tmp_path / "plain"
    run_scaling("train", str(cfg), "train.branches=[]", "--out", str(plain), "--no-progress")
    assert losses(main) == losses(plain)  # keeping branch points changes nothing of the stable run
    for end in (15, 20):
        alone = tmp_path / f"alone{end}"
        run_scaling(
            "train", str(cfg), f"train.steps={end}", "train.branches=[]", "--out", str(alone), "--no-progress"
        )
        branch = main / "branches" / f"step{end}"
        assert losses(branch) == losses(alone) and sorted(losses(branch)) == list(range(1, end + 1))
        ours, theirs = _summary(branch), _summary(alone)
        assert ours["final_val_loss"] == theirs["final_val_loss"]
        assert ours["tokens"] == theirs["tokens"] == end * 8 * 32 and ours["flops"] == theirs["flops"]
    points = sorted(int(p.name) for p in (main / "branch_points").iterdir() if p.name.isdigit())
    assert points == [12, 16]  # each branch's last 20% is its own cooldown


def test_branch_killed_mid_cooldown_resumes_exactly_and_is_never_rerun(tmp_path, data_cache):
    cfg = _config(tmp_path, data_cache, steps=120, branches=[0.5])  # branch: steps 48-60 from the stable run
    main = tmp_path / "main"
    branch = main / "branches" / "step60"
    proc = start_scaling("train", str(cfg), "--out", str(main), "--no-progress")
    kill_at_checkpoint(proc, branch, 50)
    run_scaling("train", str(cfg), "--out", str(main), "--no-progress")
    alone = tmp_path / "alone"
    run_scaling(
        "train", str(cfg), "train.steps=60", "train.branches=[]", "--out", str(alone), "--no-progress"
    )
    assert losses(branch) == losses(alone)
    finished = (branch / "metrics.jsonl").read_bytes(), (branch / "summary.json").read_bytes()
    run_scaling("train", str(cfg), "--out", str(main), "--no-progress")
    assert ((branch / "metrics.jsonl").read_bytes(), (branch / "summary.json").read_bytes()) == finished


def test_a_branch_of_another_run_is_refused(tmp_path, data_cache):
    cfg = _config(tmp_path, data_cache, steps=30, branches=[0.5])
    main = tmp_path / "main"
    run_scaling("train", str(cfg), "--out", str(main), "--no-progress")
    stranger = tmp_path / "stranger"
    result = run_scaling(
        "train",
        str(cfg),
        "train.steps=15",
        "train.branches=[]",
        "train.branch_from=main",
        "model.D=16",
        "--out",
        str(stranger),
        "--no-progress",
        check=False,
    )
    assert result.returncode == 2 and "is a different run (differs in: model.D" in result.stderr, (
        result.stderr
    )
    assert not stranger.exists() or not any(stranger.iterdir())


def test_a_resume_from_the_checkpoint_at_a_branch_point_still_keeps_it(tmp_path, data_cache):
    """Steps 12 is both a checkpoint and the branch point: a run resumed from checkpoint 12 (its branch
    point lost, say by a kill during that save) writes the point before going on."""
    cfg = tiny_run_config(
        data_cache,
        optim=WSD,
        train={
            "steps": 30,
            "branches": [0.5],
            "eval_every": 10,
            "checkpoint_every": 4,
            "keep_checkpoints": 10,
        },
    )
    path = write_config(tmp_path / "wsd.yaml", cfg)
    main = tmp_path / "main"
    run_scaling("train", str(path), "--no-branches", "--out", str(main), "--no-progress")
    for step in finished_checkpoints(main):
        if step > 12:
            shutil.rmtree(main / "checkpoints" / str(step))
    shutil.rmtree(main / "branch_points")
    (main / "summary.json").unlink()
    run_scaling("train", str(path), "--out", str(main), "--no-progress")
    alone = tmp_path / "alone"
    run_scaling(
        "train", str(path), "train.steps=15", "train.branches=[]", "--out", str(alone), "--no-progress"
    )
    assert losses(main / "branches" / "step15") == losses(alone)
