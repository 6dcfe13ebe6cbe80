"""Two processes on one run directory: one trains, the other says the directory is in use and exits, and
the run that comes out equals the same run trained alone. (Two launchers on one sweep share its runs
instead, each run trained once: tests/sweep/test_sweep_launch.py.)"""

from __future__ import annotations

import subprocess

from scaling.errors import RunInUse
from tests.helpers import REPO, run_env, run_scaling, scaling_cmd, tiny_run_config, write_config
from tests.train.test_train_resume import losses


def test_two_trainers_on_one_run_directory(tmp_path, data_cache):
    cfg = write_config(tmp_path / "run.yaml", tiny_run_config(data_cache, train={"steps": 60}))
    alone = tmp_path / "alone"
    run_scaling("train", str(cfg), "--out", str(alone), "--no-progress")
    shared = tmp_path / "shared"
    command = scaling_cmd("train", str(cfg), "--out", str(shared), "--no-progress")
    procs = [
        subprocess.Popen(
            command, env=run_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, RunInUse.exit_code], results
    (loser_err,) = [err for code, _, err in results if code == RunInUse.exit_code]
    assert loser_err.count("\n") == 1 and "in use by another training process" in loser_err, loser_err
    assert losses(shared) == losses(alone)
