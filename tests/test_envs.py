"""Vector envs: final observations, normalisation, evaluation quotas."""

import numpy as np
import torch

from rlrun.config import EnvConfig
from rlrun.envs.factory import make_vec_env
from rlrun.envs.normalize import RunningMeanStd
from rlrun.evaluation import EvalResult, evaluate


def test_final_obs_is_the_real_last_observation_on_truncation():
    envs = make_vec_env(EnvConfig(id="CartPole-v1", max_episode_steps=5), 2)
    obs = envs.reset(seed=0)
    for t in range(5):
        step = envs.step(np.zeros(2, dtype=np.int64) + t % 2)
    assert step.truncations.all() and not step.terminations.any()
    assert not np.allclose(step.final_obs, step.obs)  # obs is already the next episode's first
    assert list(step.episode_lengths) == [5, 5] and list(step.episode_returns) == [5.0, 5.0]
    envs.close()


def test_running_mean_std_matches_numpy():
    rms = RunningMeanStd((3,), epsilon=0.0)
    data = np.random.default_rng(0).normal(2.0, 3.0, size=(1000, 3))
    for chunk in np.split(data, 10):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-10)


def test_running_mean_std_of_single_rows_matches_numpy():
    rms = RunningMeanStd((3,), epsilon=0.0)
    data = np.random.default_rng(1).normal(-1.0, 2.0, size=(300, 3))
    for row in data:
        rms.update(row[None])
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-10)


def test_observation_normalisation_is_frozen_in_eval_envs():
    cfg = EnvConfig(id="Pendulum-v1", normalize_obs=True, normalize_reward=True)
    train = make_vec_env(cfg, 2, training=True)
    train.reset(seed=0)
    for _ in range(50):
        train.step(np.zeros((2, 1), np.float32))
    evaluation = make_vec_env(cfg, 2, training=False, obs_normalizer=train.obs_normalizer)
    count = train.obs_normalizer.rms.count
    evaluation.reset(seed=1)
    for _ in range(10):
        evaluation.step(np.zeros((2, 1), np.float32))
    assert train.obs_normalizer.rms.count == count
    assert evaluation.reward_normalizer is None


class Constant(torch.nn.Module):
    def act(self, obs, deterministic=True):
        return torch.zeros(len(obs), dtype=torch.long)


def test_evaluate_runs_exactly_the_requested_episodes():
    envs = make_vec_env(EnvConfig(id="CartPole-v1"), 3, training=False)
    result = evaluate(Constant(), envs, 7, seed=0, device=torch.device("cpu"))
    assert len(result.returns) == 7 and (result.returns > 0).all()
    np.testing.assert_array_equal(result.returns, result.lengths)


def test_iqm():
    result = EvalResult(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0]), np.ones(8))
    assert result.iqm == 3.5  # mean of 2, 3, 4, 5


def test_checkpointed_envs_continue_bit_for_bit():
    import io

    for cfg in (EnvConfig(id="CartPole-v1"), EnvConfig(id="Hopper-v4", normalize_obs=True, normalize_reward=True)):
        envs = make_vec_env(cfg, 3)
        envs.action_space.seed(1)
        envs.reset(seed=0)
        for _ in range(123):
            envs.step(envs.action_space.sample())
        buffer = io.BytesIO()
        torch.save(envs.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        expected = [envs.step(envs.action_space.sample()) for _ in range(200)]
        restored = make_vec_env(cfg, 3)
        restored.load_state_dict(state)
        restored.reset(seed=99)  # the seed is ignored: the checkpointed episodes are rebuilt
        for want in expected:
            got = restored.step(restored.action_space.sample())
            np.testing.assert_array_equal(got.obs, want.obs)
            np.testing.assert_array_equal(got.rewards, want.rewards)
            np.testing.assert_array_equal(got.terminations | got.truncations, want.terminations | want.truncations)


def test_unreplayable_envs_start_fresh_episodes_and_say_so():
    envs = make_vec_env(EnvConfig(id="CartPole-v1"), 2)
    envs.reset(seed=0)
    for _ in range(5):
        envs.step(np.zeros(2, dtype=np.int64))
    state = envs.state_dict()
    state["obs"] = state["obs"] + 1.0  # what a simulator with hidden randomness would look like
    state["episodes"]["obs"] = state["episodes"]["obs"] + 1.0
    messages = []
    fresh = make_vec_env(EnvConfig(id="CartPole-v1"), 2)
    fresh.notify = messages.append
    fresh.load_state_dict(state)
    obs = fresh.reset(seed=7)
    assert len(messages) == 1 and "fresh episodes" in messages[0]
    np.testing.assert_array_equal(obs, make_vec_env(EnvConfig(id="CartPole-v1"), 2).reset(seed=7))
