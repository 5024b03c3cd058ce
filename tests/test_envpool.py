"""env.backend=envpool: the same vector-env contract as Gymnasium's envs, and clear refusals."""

import numpy as np
import pytest
import torch

from rlrun.config import ConfigError, EnvConfig
from rlrun.envs.factory import make_vec_env
from rlrun.run.eval_episodes import evaluate

pytest.importorskip("envpool")

ENVPOOL = {"backend": "envpool"}


def test_ended_envs_reset_in_the_same_step_and_report_their_final_obs():
    envs = make_vec_env(EnvConfig(id="CartPole-v1", max_episode_steps=5, **ENVPOOL), 2)
    envs.reset(seed=0)
    lengths = []
    for t in range(12):  # alternate pushes: no pole falls within 5 steps, so every end is a truncation
        step = envs.step(np.zeros(2, dtype=np.int64) + t % 2)
        lengths += list(step.episode_lengths)
        if t % 5 == 4:
            assert step.truncations.all() and not step.terminations.any()
            assert not np.allclose(step.final_obs, step.obs)  # obs is already the next episode's first
            assert (np.abs(step.obs) <= 0.05).all()  # CartPole starts within ±0.05
            assert list(step.episode_returns) == [5.0, 5.0]
        else:
            assert not (step.truncations | step.terminations).any()
            np.testing.assert_array_equal(step.final_obs, step.obs)
    assert lengths == [5, 5, 5, 5]
    envs.close()


def test_reset_seeds_decide_the_episodes():
    envs = make_vec_env(EnvConfig(id="Hopper-v4", **ENVPOOL), 2)
    first = envs.reset(seed=3)
    envs.step(np.zeros((2, 3), np.float32))
    again = envs.reset(seed=3)
    other = envs.reset(seed=4)
    unseeded = envs.reset()  # continues the envs' RNGs: new episodes, not seed 4's again
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(other, unseeded)
    assert not np.array_equal(first[0], first[1])  # env i draws from seed + i
    envs.close()


class Constant(torch.nn.Module):
    def act(self, obs, deterministic=True):
        return torch.ones(len(obs), dtype=torch.long)


def test_evaluation_counts_whole_episodes():
    envs = make_vec_env(EnvConfig(id="CartPole-v1", **ENVPOOL), 3, training=False)
    result = evaluate(Constant(), envs, 7, seed=0, device=torch.device("cpu"))
    assert len(result.returns) == 7
    assert ((result.returns >= 8) & (result.returns <= 12)).all()  # always pushing right falls in ~10 steps
    np.testing.assert_array_equal(result.returns, result.lengths)


def test_ppo_learns_cartpole_on_envpool(train_run, tmp_path):
    overrides = ["env=CartPole-v1", "env.backend=envpool", "total_timesteps=30000", "optimizer.lr=1e-3",
                 "eval.every_steps=0", "eval.episodes=10", "seed=1"]
    result = train_run(overrides, tmp_path)
    assert result.final_eval_return > 150


def test_unknown_envpool_id_names_the_fix():
    with pytest.raises(ConfigError, match="EnvPool has no env 'Acrobat-v1': did you mean Acrobot-v1"):
        make_vec_env(EnvConfig(id="Acrobat-v1", **ENVPOOL), 1)

