"""A multirun that cannot run is refused in one line before Hydra makes its sweep dir: a swept
value its key refuses, a Slurm launcher without Slurm."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SMALL_RUN, one_line_error, rlrun


def test_a_swept_value_of_the_wrong_type_is_refused_before_any_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    line = one_line_error(rlrun("-m", "optimizer.lr=1e-3,abc", *SMALL_RUN, f"hydra.sweep.dir={sweep_dir}",
                                cwd=tmp_path))
    assert line.startswith("rlrun: optimizer.lr=abc: ") and "Float" in line
    assert not sweep_dir.exists()


def test_a_sweep_of_valid_values_is_not_refused(tmp_path):
    from rlrun.cli.compose import compose_checked
    from rlrun.cli.train_command import _check_sweep, _setup

    _setup()
    cfg = compose_checked("train", ["optimizer.lr=1e-3"], "hydra.sweep.dir")
    _check_sweep(cfg, ["-m", "optimizer.lr=1e-3,3e-4,1", "seed=0,1"])  # no SystemExit


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="needs the submitit launcher plugin")
def test_the_slurm_launcher_without_slurm_names_the_fix(tmp_path):
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    if shutil.which("sbatch", path=path):
        pytest.skip("Slurm is installed here")
    sweep_dir = tmp_path / "sweep"
    exe = Path(sys.executable).parent / "rlrun"
    result = subprocess.run(
        [str(exe), "-m", "hydra/launcher=submitit_slurm", *SMALL_RUN, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": path, "WANDB_MODE": "offline"},
    )
    line = one_line_error(result)
    assert "sbatch is not on the PATH" in line and "hydra/launcher=joblib" in line
    assert not sweep_dir.exists()
