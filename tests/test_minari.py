"""Minari datasets: rlrun-eval eval.dataset= records them, algo=bc/dagger algo.dataset=<id> reads them.

Every dataset is made here, in a tmp MINARI_DATASETS_PATH; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_EVAL, refused, rlrun_eval

from rlrun.cli import train_command as cli
from rlrun.config import ConfigError
from rlrun.data.demos import minari_available
from rlrun.envs.recording import EpisodeRecorder

needs_minari = pytest.mark.skipif(not minari_available(), reason="needs the minari extra: pip install -e '.[minari]'")
CARTPOLE = gym.make("CartPole-v1")


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    """A fresh Minari local storage for this test."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A barely trained PPO CartPole run: enough to record episodes, not to imitate."""
    from conftest import train_in_process

    run_dir = tmp_path_factory.mktemp("tiny")
    train_in_process(["total_timesteps=256", "algo.num_steps=32", *TINY_EVAL], run_dir)
    return run_dir


class _Counter(gym.Env):
    """Episodes of 3 steps whose infos hold storable values and some that are not."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {"t": 0, "name": "c", "vec": np.zeros(2), "deep": {"x": 0.0},
                                         "at_reset_only": 1, "ragged": np.zeros(1)}

    def step(self, action):
        self.t += 1
        info = {"t": self.t, "name": "c", "vec": np.full(2, self.t), "deep": {"x": self.t / 2},
                "ragged": np.zeros(self.t + 1), "object": object()}
        return np.full(1, self.t, np.float32), float(action), self.t >= 3, False, info


def test_recorder_keeps_its_quota_of_episodes_in_minari_layout():
    env = EpisodeRecorder(_Counter(), quota=2)
    env.reset(seed=5)
    for episode in range(3):
        for _ in range(3):
            env.step(1)
        env.reset()
    first, second = env.episodes  # the third episode is past the quota
    assert len(env.episodes) == 2 and first.seed == 5 and second.seed is None
    assert first.observations[:, 0].tolist() == [0, 1, 2, 3] and first.actions.tolist() == [1, 1, 1]
    assert first.rewards.tolist() == [1.0] * 3 and first.terminations.tolist() == [False, False, True]
    assert not first.truncations.any()
    # Reset and step infos, T+1 rows; a key missing from a step, of changing shape or not storable is left out.
    assert sorted(first.infos) == ["deep", "name", "t", "vec"]
    assert first.infos["t"].tolist() == [0, 1, 2, 3] and first.infos["vec"].shape == (4, 2)
    assert first.infos["deep"]["x"].tolist() == [0.0, 0.5, 1.0, 1.5] and first.infos["name"] == ["c"] * 4


def test_training_refuses_eval_dataset(compose_cfg):
    with pytest.raises(ConfigError, match="rlrun-eval only"):
        compose_cfg(["eval.dataset=rlrun/cartpole-v0"])


def test_missing_minari_is_one_line_naming_the_extra(tiny_checkpoint, minari_root, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "minari", None)  # as if it were not installed
    err = refused(capsys, cli.evaluate, tiny_checkpoint, "eval.dataset=rlrun/cartpole-v0")
    assert "pip install -e '.[minari]'" in err, err
    assert not minari_root.exists()


@needs_minari
def test_eval_dataset_refuses_bad_ids_and_existing_datasets(tiny_checkpoint, minari_root, monkeypatch, capsys):
    for bad in ("cartpole", "rlrun/cartpole", "cartpole-v0", "rlrun/cart pole-v0"):
        err = refused(capsys, cli.evaluate, tiny_checkpoint, f"eval.dataset={bad}")
        assert "not a Minari dataset id" in err and "e.g. eval.dataset=rlrun/cartpole-expert-v0" in err, err
    assert not (tiny_checkpoint / "checkpoints" / "last.eval.json").exists()  # refused before evaluating
    dataset = "rlrun/cartpole-tiny-v0"
    rlrun_eval(monkeypatch, tiny_checkpoint, f"eval.dataset={dataset}", "eval.episodes=3", "eval.num_envs=2")
    out = capsys.readouterr().out
    assert f"wrote Minari dataset {dataset} (3 episodes" in out, out
    data_file = next((minari_root / dataset / "data").glob("main_data.*"))
    written = data_file.read_bytes()
    err = refused(capsys, cli.evaluate, tiny_checkpoint, f"eval.dataset={dataset}", "eval.episodes=2")
    assert "exists already" in err and "eval.dataset_overwrite=true" in err, err
    assert data_file.read_bytes() == written
    rlrun_eval(monkeypatch, tiny_checkpoint, f"eval.dataset={dataset}", "eval.dataset_overwrite=true",
               "eval.episodes=2", "eval.num_envs=2")
    import minari

    assert minari.load_dataset(dataset).total_episodes == 2
    assert [p.name for p in (minari_root / "rlrun").iterdir() if p.name.startswith(".")] == []


@needs_minari
@pytest.mark.slow
def test_expert_episodes_recorded_by_rlrun_eval_teach_bc(cartpole_expert, minari_root, monkeypatch, train_each_seed,
                                                       tmp_path):
    """Record 2 expert episodes with rlrun-eval, read them with Minari's own loader, and train BC
    from the dataset id. BC from these 1000 transitions returned 500 on seeds 0-4 (2026-12-16)."""
    import minari

    dataset_id = "rlrun/cartpole-expert-v0"
    rlrun_eval(monkeypatch, cartpole_expert.checkpoint, f"eval.dataset={dataset_id}", "eval.episodes=2",
               "eval.num_envs=2")
    report = json.loads(cartpole_expert.checkpoint.with_name("best.eval.json").read_text())
    assert report["dataset"] == dataset_id
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == 2 and dataset.spec.env_spec.id == "CartPole-v1"
    assert dataset.observation_space == CARTPOLE.observation_space and dataset.action_space == CARTPOLE.action_space
    episodes = list(dataset.iterate_episodes())
    assert all(len(e.observations) == len(e.actions) + 1 == len(e.rewards) + 1 for e in episodes)
    assert sorted(float(e.rewards.sum()) for e in episodes) == sorted(report["returns"])
    assert dataset.total_steps == sum(report["lengths"])
    results = train_each_seed(["algo=bc", f"algo.dataset={dataset_id}", "eval.every_steps=0", "eval.episodes=10"],
                              tmp_path)
    returns = {seed: result.final_eval_return for seed, result in results.items()}
    assert min(returns.values()) >= 475, returns


@pytest.mark.slow
@needs_minari
def test_bc_refuses_a_dataset_of_other_spaces_in_one_line(minari_root, monkeypatch, tmp_path, capsys):
    from conftest import train_in_process

    acrobot = tmp_path / "acrobot"
    train_in_process(["env=Acrobot-v1", "total_timesteps=128", "algo.num_steps=64", *TINY_EVAL], acrobot)
    rlrun_eval(monkeypatch, acrobot, "eval.dataset=rlrun/acrobot-v0", "eval.episodes=1",
               "eval.max_episode_steps=50")
    result = subprocess.run(
        [sys.executable, "-c", "from rlrun.cli.train_command import train; train()", "algo=bc", "algo.dataset=rlrun/acrobot-v0",
         f"hydra.run.dir={tmp_path / 'bc'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
        env={**os.environ, "MINARI_DATASETS_PATH": str(minari_root)},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("rlrun: algo.dataset=rlrun/acrobot-v0 holds observations Box(")
    assert "(6,), float32) and actions Discrete(3)" in result.stderr  # the dataset's spaces
    assert "(4,), float32) and Discrete(2)" in result.stderr  # the env's


@needs_minari
def test_eval_dataset_under_a_relative_storage_path(tiny_checkpoint, tmp_path, monkeypatch):
    """Minari 0.5 alone fails to write under a relative MINARI_DATASETS_PATH (README commands use one)."""
    import minari

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", "datasets")
    rlrun_eval(monkeypatch, tiny_checkpoint, "eval.dataset=rlrun/relative-v0", "eval.episodes=1")
    assert (tmp_path / "datasets" / "rlrun" / "relative-v0" / "data" / "metadata.json").is_file()
    assert minari.load_dataset("rlrun/relative-v0").total_episodes == 1
