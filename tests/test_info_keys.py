"""`logger.info_keys`: means of values in each episode's final info, as `rollout/<key>` over the
return window and `eval/<key>` over the evaluation episodes, in every output."""

from __future__ import annotations

import json
import math
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import read_metrics
from omegaconf import OmegaConf

from rlrun.cli import train_command as cli
from rlrun.config import ConfigError, LoggerConfig
from rlrun.envs.final_info import FinalInfo
from rlrun.envs.vector import batched_info_rows
from rlrun.results.report import write_report
from rlrun.training.stats import EpisodeWindow

ENV_ID = "rlrun_tests/InfoPattern-v0"
LENGTH = 4
"""Steps of every episode."""


class InfoPattern(gym.Env):
    """Episodes of LENGTH steps. Episode k, counted from 0 at each seeded reset, ends with
    `is_success` = (k % 3 == 0) (one success in three), `score` = 3 when k % 3 == 0, no
    `score` when k % 3 == 1 and the text "bad" when k % 3 == 2, and `label` always text."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.episode = self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode = 0 if seed is not None else self.episode + 1
        self.t = 0
        return np.zeros(1, np.float32), {"is_success": "not final"}

    def step(self, action):
        self.t += 1
        info: dict = {"is_success": "not final"}  # only the final info counts
        if self.t == LENGTH:
            kind = self.episode % 3
            info = {"is_success": kind == 0, "label": "text"}
            if kind != 1:
                info["score"] = 3 if kind == 0 else "bad"
        return np.full(1, self.t / LENGTH, np.float32), 1.0, self.t == LENGTH, False, info


@pytest.fixture(autouse=True)
def info_pattern_env():
    """InfoPattern registered as ENV_ID for the test (async workers inherit it: they are forked)."""
    gym.register(ENV_ID, entry_point=InfoPattern)
    yield
    del gym.registry[ENV_ID]

TRAIN = [f"env={ENV_ID}", "env.num_envs=1", "algo=ppo", "algo.num_steps=16", "total_timesteps=96", "logger.return_window=3",
         "eval.every_steps=48", "eval.episodes=6", "eval.num_envs=2"]
"""PPO on InfoPattern: 16-step rollouts (4 episodes per env), evaluations of 3 episodes per env."""


def values(rows: list[dict], key: str) -> list[float]:
    return [row[key] for row in rows if key in row]


def test_final_info_values_skip_missing_and_non_numbers():
    notices = []
    final = FinalInfo(["a", "b"], notices.append)
    infos = {0: {"a": True, "b": "x"}, 1: {"a": np.float32(0.25)}, 3: {"a": np.array([2.0]), "b": None},
             4: {"a": math.nan, "b": np.int64(5)}}
    columns = final.values(infos, np.array([0, 1, 2, 3, 4]))
    np.testing.assert_array_equal(columns["a"], [1.0, 0.25, np.nan, 2.0, np.nan])
    np.testing.assert_array_equal(columns["b"], [np.nan, np.nan, np.nan, np.nan, 5.0])
    assert len(notices) == 1 and "info['b'] is str 'x', not a number" in notices[0]
    final.values({0: {"a": [1, 2], "b": "y"}}, np.array([0]))  # a list is no number either
    assert len(notices) == 2 and "info['a'] is list" in notices[1]
    assert final.values({}, np.array([0, 1])) == {}


def test_batched_infos_give_the_rows_that_have_the_key():
    nested = {"x": "a dict of arrays"}
    gymnasium_style = {"k": np.array([1.0, 0.0, 7.0]), "_k": np.array([True, False, True]),
                       "d": nested, "_d": np.ones(3, bool)}
    assert batched_info_rows(gymnasium_style, np.array([0, 1]), ("k", "d", "absent")) == {
        0: {"k": 1.0, "d": nested}, 1: {"d": nested}}  # env 1 has no `k`; `d` is no number
    envpool_style = {"k": np.array([5, 6, 7])}  # no masks: every env has every key
    assert batched_info_rows(envpool_style, np.array([2]), ("k",)) == {2: {"k": 7}}


def test_window_means_skip_episodes_without_a_number_and_resume_exactly(tmp_path):
    window = EpisodeWindow(3)
    window.add(np.array([1.0]), np.array([4]))  # before any episode reported a key
    window.add(np.array([2.0, 3.0]), np.array([4, 4]), {"s": np.array([1.0, np.nan])})
    assert window.metrics()["rollout/s"] == 1.0
    window.add(np.array([4.0]), np.array([4]), {"s": np.array([0.0])})
    assert window.metrics()["rollout/s"] == 0.5  # episodes 2, 3, 4: 1, none, 0
    window.add(np.array([5.0, 6.0]), np.array([4, 4]))
    assert "rollout/s" in window.metrics()  # episode 4 is still in the window
    window.add(np.array([7.0]), np.array([4]))
    assert "rollout/s" not in window.metrics() and "rollout/ep_return_mean" in window.metrics()
    window.add(np.array([8.0]), np.array([4]), {"s": np.array([0.75])})

    torch.save(window.state_dict(), tmp_path / "window.pt")
    restored = EpisodeWindow(3)
    restored.load_state_dict(torch.load(tmp_path / "window.pt", weights_only=True))
    assert restored.metrics() == window.metrics() and restored.metrics()["rollout/s"] == 0.75
    for more in (window, restored):
        more.add(np.array([9.0]), np.array([4]), {"t": np.array([2.0])})
    assert restored.metrics() == window.metrics() and window.metrics()["rollout/t"] == 2.0

    old = EpisodeWindow(3)  # a checkpoint written before info keys were logged
    old.load_state_dict({"returns": [1.0, 2.0], "lengths": [4, 4], "total": 2})
    old.add(np.array([3.0]), np.array([4]), {"s": np.array([0.5])})
    assert old.metrics()["rollout/s"] == 0.5 and old.metrics()["rollout/ep_return_mean"] == 2.0
    assert np.isnan(old.state_dict()["infos"]["s"][:2]).all()


@pytest.mark.parametrize("keys", [[""], ["is_success", "is_success"], ["ep_return_mean"], ["return_mean"]])
def test_bad_info_keys_are_refused(keys):
    with pytest.raises(ConfigError, match="logger.info_keys"):
        LoggerConfig(info_keys=keys)


def test_success_rate_in_rollout_eval_status_and_eval_cli(train_run, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    train_run([*TRAIN, "logger.info_keys=[is_success,score,label]"], run_dir)
    rows = read_metrics(run_dir)
    windows = [row for row in rows if row.get("rollout/episodes", 0) >= 3]
    assert windows and all(row["rollout/is_success"] == pytest.approx(1 / 3) for row in windows)
    assert all(row["rollout/score"] == 3.0 for row in windows)  # missing and "bad" skipped
    assert values(rows, "eval/is_success") == [pytest.approx(1 / 3)] * 2  # eval at 48 and 96
    assert values(rows, "eval/score") == [3.0, 3.0]
    assert not values(rows, "rollout/label") and not values(rows, "eval/label")
    log = (run_dir / "train.log").read_text()
    assert log.count("logger.info_keys:") == 2  # one line each for `score` ("bad") and `label`
    assert "eval 4 ± 0 (is_success 0.333, score 3) @ 96" in log  # the status line

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # the table's columns unwrapped
    monkeypatch.setattr(sys, "argv", ["rlrun-eval", str(run_dir), "eval.episodes=9", "eval.num_envs=3"])
    cli.evaluate()
    out, err = capsys.readouterr()
    assert "is_success mean" in out and "0.333" in out and err.count("logger.info_keys:") == 2
    report = json.loads((run_dir / "checkpoints" / "last.eval.json").read_text())
    assert report["eval/is_success"] == pytest.approx(1 / 3) and report["eval/score"] == 3.0
    assert report["final_info"]["score"] == [3.0] * 3 + [None] * 6  # the 3 envs end together
    assert report["final_info"]["is_success"] == [1.0] * 3 + [0.0] * 6


def test_async_vectorization_gives_the_same_numbers(train_run, tmp_path):
    runs = {}
    for vectorization in ("sync", "async"):
        run_dir = tmp_path / vectorization
        train_run([*TRAIN, "env.num_envs=2", f"env.vectorization={vectorization}",
                   "logger.info_keys=[is_success,score]"], run_dir)
        runs[vectorization] = [{k: v for k, v in row.items() if k.startswith(("rollout/", "eval/"))}
                               for row in read_metrics(run_dir)]
    assert any("rollout/is_success" in row for row in runs["sync"])
    assert runs["async"] == runs["sync"]


def test_envs_without_the_key_log_nothing(train_run, tmp_path):
    run_dir = tmp_path / "cartpole"
    train_run(["env=CartPole-v1", "algo.num_steps=64", "total_timesteps=256", "eval.episodes=2"], run_dir)
    rows = read_metrics(run_dir)
    assert values(rows, "rollout/ep_return_mean") and values(rows, "eval/return_mean")
    assert not [key for row in rows for key in row if key.endswith("is_success")]
    assert "logger.info_keys" not in (run_dir / "train.log").read_text()


@pytest.mark.slow
def test_report_shows_the_final_eval_mean_per_group(train_run, compose_cfg, tmp_path):
    for seed in (0, 1):
        overrides = [*TRAIN, f"seed={seed}"]
        run_dir = tmp_path / "runs" / f"s{seed}"
        train_run(overrides, run_dir)
        (run_dir / ".hydra").mkdir()  # as the command line writes them
        (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(compose_cfg(overrides)))
        (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    groups = write_report([tmp_path / "runs"], tmp_path / "report", resamples=50)
    assert len(groups) == 1
    markdown = (tmp_path / "report" / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| env"))
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {ENV_ID}"))
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert cells[" eval/is_success "].strip() == "0.333"
    csv_lines = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    assert csv_lines[0].endswith(",eval/is_success")
    assert all(math.isclose(float(line.rsplit(",", 1)[1]), 1 / 3) for line in csv_lines[1:])


@pytest.mark.parametrize(("package", "env_id", "key"), [
    ("highway_env", "parking-v0", None),  # reports `is_success` (the default key) in every info
    ("gymnasium_robotics", "PointMaze_UMaze-v3", "success"),  # reports `success`
])
def test_real_env_packages_report_their_key(train_run, tmp_path, package, env_id, key):
    gym.register_envs(pytest.importorskip(package))
    run_dir = tmp_path / "run"
    chosen = [] if key is None else [f"logger.info_keys=[{key}]"]
    train_run([f"env={env_id}", "env.num_envs=1", "env.max_episode_steps=10", "algo.num_steps=20",
               "algo.num_minibatches=2", "total_timesteps=40", "eval.episodes=2", "eval.num_envs=1", *chosen], run_dir)
    rows = read_metrics(run_dir)
    logged = f"{key or 'is_success'}"
    assert all(0.0 <= value <= 1.0 for value in values(rows, f"rollout/{logged}"))
    assert len(values(rows, f"rollout/{logged}")) == 2 and len(values(rows, f"eval/{logged}")) == 1
