"""Atari preprocessing: stacked 84x84 frames, clipped rewards and life episodes in training only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from rlrun.config import EnvConfig
from rlrun.envs.factory import make_vec_env

# Space Invaders scores 5 to 30 points per alien, so clipped and raw rewards differ at once.
SPACE_INVADERS = EnvConfig(id="ALE/SpaceInvaders-v5", family="atari")


def _play(training: bool, episodes: int, seed: int = 0):
    """Random play for `episodes` episodes; returns the set of rewards seen and the returns."""
    envs = make_vec_env(SPACE_INVADERS, 1, training=training)
    obs = envs.reset(seed=seed)
    assert obs.shape == (1, 4, 84, 84) and obs.dtype == np.uint8
    rng = np.random.default_rng(seed)
    rewards, returns = set(), []
    while len(returns) < episodes:
        step = envs.step(rng.integers(0, envs.single_action_space.n, size=1))
        assert step.obs.shape == (1, 4, 84, 84) and step.obs.dtype == np.uint8
        rewards.update(step.rewards.tolist())
        returns += step.episode_returns.tolist()
    envs.close()
    return rewards, returns


def test_training_envs_clip_rewards_and_end_episodes_at_each_life_loss():
    rewards, returns = _play(training=True, episodes=2)
    assert rewards <= {0.0, 1.0, -1.0} and 1.0 in rewards
    assert all(float(r).is_integer() for r in returns)
    # The game goes on after a life loss: the second life starts with one life fewer.
    envs = make_vec_env(SPACE_INVADERS, 1, training=True)
    envs.reset(seed=0)
    ale = envs.envs.envs[0].unwrapped.ale
    start_lives, rng = ale.lives(), np.random.default_rng(0)
    while not len(envs.step(rng.integers(0, 6, size=1)).episode_returns):
        pass
    assert ale.lives() == start_lives - 1 and not ale.game_over()
    envs.close()


def test_evaluation_envs_report_raw_scores_of_whole_games():
    rewards, returns = _play(training=False, episodes=1)
    assert max(rewards) >= 5.0  # raw alien scores, not clipped
    assert returns[0] >= 5.0 and returns[0] % 5 == 0


def test_breakout_serves_the_ball_by_itself():
    """FIRE at reset and after each life loss: a standing policy still finishes games."""
    envs = make_vec_env(EnvConfig(id="ALE/Breakout-v5", family="atari"), 1, training=False)
    envs.reset(seed=0)
    for _ in range(3000):
        step = envs.step(np.zeros(1, np.int64))  # NOOP forever
        if len(step.episode_returns):
            break
    assert len(step.episode_returns) == 1, "the game should end once every life is lost"
    envs.close()


def test_dqn_trains_on_breakout_with_frames_stored_once(train_run, tmp_path):
    from rlrun.run.checkpoint_files import load_checkpoint

    result = train_run(
        [
            "algo=dqn",
            "env=ALE/Breakout-v5",
            "total_timesteps=240",
            "algo.learning_starts=200",
            "algo.buffer_size=500",
            "algo.batch_size=8",
            "eval.episodes=1",
            "eval.num_envs=1",
            "eval.every_steps=0",
        ],
        tmp_path,
    )
    assert result.global_step == 240
    replay = load_checkpoint(tmp_path / "checkpoints" / "replay.pt")["state"]
    assert replay["frames"].shape == (241, 1, 84, 84) and replay["frames"].dtype == torch.uint8  # frames once
    assert "next_obs" not in replay  # optimize_memory: next frames are the following rows
