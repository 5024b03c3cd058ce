"""Run dirs written by an earlier rlrun still evaluate and resume.

tests/fixtures/checkpoints/ holds one run dir per case of scripts/fingerprint.py (every
algorithm; frame-stack replay, Dict observations, normalisation), written by
scripts/make_checkpoint_fixtures.py at the commit its COMMIT file names: `checkpoints/last.pt`,
its side files and `.hydra/`. Each is copied, evaluated by `rlrun-eval` (which does not take the
language task of ppo_lm and grpo) and resumed by `rlrun resume=` for a few more steps, ending with
an evaluation, in this process."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import rlrun
from rlrun.cli import train_command as cli
from rlrun.run.checkpoint_files import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
CASES = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())
MORE = 8
"""Env steps (bc, dagger: samples) past the checkpoint's that the resumed run trains: every
algorithm then runs at least one more iteration or training phase."""


def test_every_case_has_a_fixture():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from fingerprint import cases
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert CASES == sorted(cases()), "run python scripts/make_checkpoint_fixtures.py <new cases>"


@pytest.mark.parametrize("case", CASES)
def test_an_old_run_dir_evaluates_and_resumes(case, tmp_path, monkeypatch, capsys):
    env = OmegaConf.load(FIXTURES / case / ".hydra" / "config.yaml").env
    for package in [*env.imports, *(["ale_py"] if env.family == "atari" else [])]:
        pytest.importorskip(package)
    run_dir = tmp_path / case
    shutil.copytree(FIXTURES / case, run_dir)
    monkeypatch.chdir(ROOT)  # bc and dagger name their expert relative to the repository
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["global_step"]

    if env.family != "lm":
        monkeypatch.setattr(sys, "argv", ["rlrun-eval", str(run_dir), "eval.episodes=1",
                                          "eval.num_envs=1", "eval.max_episode_steps=50"])
        cli.evaluate()
        report = json.loads((run_dir / "checkpoints" / "last.eval.json").read_text())
        assert (report["global_step"], report["episodes"]) == (step, 1)
        assert f"(step {step})" in capsys.readouterr().out

    result = rlrun.train(resume=str(run_dir), total_timesteps=step + MORE)
    assert "RLRUN_ENV_MODULES" not in os.environ  # the call leaves the process's variables as found
    assert result.stopped_because == "budget" and result.final_eval is not None, result.message
    assert result.global_step >= step + MORE
    assert load_checkpoint(result.checkpoint)["global_step"] == result.global_step
