"""Benchmark suites as configs: their cases compose and validate, a suite runs on a launcher and
a re-launch in its sweep dir skips finished runs; per-env presets apply after the family's."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ok, run_command

from rlrun.cli import train_command as cli
from rlrun.cli.compose import CONF_DIR, override_lists


@pytest.fixture(autouse=True)
def _registered():
    cli._setup()


SUITES = sorted(p.stem for p in (Path(CONF_DIR) / "suite").glob("*.yaml"))
CASES = sorted((Path(CONF_DIR) / "bench").glob("*/*.yaml"))


def test_every_suite_names_its_cases_and_seeds():
    assert SUITES == ["classic", "mujoco", "mujoco_offpolicy"]
    for suite in SUITES:
        cfg = cli.compose_checked("train", [f"+suite={suite}"], "hydra.sweep.dir")
        params = cfg.hydra.sweeper.params
        assert params[f"+bench/{suite}"] == "glob(*)" and str(params.seed).startswith("range(")
        assert cfg.hydra.sweep.dir == f"outputs/suite/{suite}"


def test_the_classic_suite_has_every_algorithm_on_every_task_its_actions_allow():
    combinations, _ = override_lists(["+bench/classic=glob(*)"])
    names = {combination[0].split("=")[1] for combination in combinations}
    discrete = {"ppo", "ppo_kl", "a2c", "reinforce", "offpac", "npg", "trpo", "cem", "dqn", "sarsa", "rlhf"}
    continuous = {"ppo", "ppo_kl", "a2c", "reinforce", "offpac", "npg", "trpo", "cem", "ddpg", "td3", "sac", "rlhf"}
    expected = {f"{a}_{e}" for a in discrete for e in ("CartPole-v1", "Acrobot-v1")}
    expected |= {f"{a}_Pendulum-v1" for a in continuous}
    assert names == expected


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_each_case_composes_with_its_preset_and_validates(case):
    algo, env = case.stem.split("_", 1) if not case.stem.startswith("ppo_kl") else ("ppo_kl", case.stem[7:])
    cfg = cli.compose_checked("train", [f"+bench/{case.parent.name}={case.stem}"], "hydra.run.dir")
    assert cfg.algo.name == algo and cfg.env.id == env
    assert cfg.hydra.runtime.choices.preset == f"{algo}_{cfg.env.family}"


def test_a_per_env_preset_applies_after_the_familys(tmp_path):
    cfg = cli.compose_checked("train", ["algo=trpo", "env=HalfCheetah-v4"])
    assert cfg.algo.max_kl == 0.04 and cfg.algo.cg_iters == 25  # env file over the family file
    assert cli.compose_checked("train", ["algo=trpo", "env=Hopper-v4"]).algo.max_kl == 0.01
    assert cli.compose_checked("train", ["algo=trpo", "env=HalfCheetah-v4", "algo.max_kl=0.02"]).algo.max_kl == 0.02
    out = ok(run_command("rlrun", "algo=trpo", "env=HalfCheetah-v4", "--cfg", "job", cwd=tmp_path))
    assert "max_kl: 0.04" in out


@pytest.mark.slow
def test_a_suite_runs_and_its_relaunch_skips_finished_runs(tmp_path):
    suites = tmp_path / "conf" / "suite"
    suites.mkdir(parents=True)
    (suites / "tiny.yaml").write_text(
        "# @package _global_\n"
        "hydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n"
        "      +bench/classic: ppo_CartPole-v1,dqn_CartPole-v1\n      seed: range(2)\n"
        "total_timesteps: 600\neval:\n  episodes: 2\n"
    )
    args = ["rlrun", "+suite=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra/launcher=joblib"]
    first = ok(run_command(*args, cwd=tmp_path))
    assert first.count("Finished at step") == 4
    again = ok(run_command(*args, cwd=tmp_path))
    assert again.count("already finished") == 4 and "Finished at step" not in again
