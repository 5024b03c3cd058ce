"""Vector envs: final observations, normalisation, evaluation quotas."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlrun.config import ConfigError, EnvConfig
from rlrun.data.one_hot import OneHotIndices
from rlrun.envs.factory import OneHotBox, adapt_observations, is_image, make_vec_env, one_hot_sizes
from rlrun.envs.normalize import RunningMeanStd
from rlrun.run.eval_episodes import EvalResult, evaluate


def test_final_obs_is_the_real_last_observation_on_truncation():
    envs = make_vec_env(EnvConfig(id="CartPole-v1", max_episode_steps=5), 2)
    envs.reset(seed=0)
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


class _LegacyRngEnv(gym.Env):
    """Draws every observation from a legacy RandomState held as `np_random`, as dm_control's
    envs do through Shimmy; episodes last 3 steps, so the vector env resets it by itself."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self._rng, self._t = np.random.RandomState(), 0

    @property
    def np_random(self) -> np.random.RandomState:
        return self._rng

    @np_random.setter
    def np_random(self, value: np.random.RandomState) -> None:
        self._rng = value

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.RandomState(seed)
        self._t = 0
        return self._rng.standard_normal(3), {}  # odd counts leave a cached gaussian in the state

    def step(self, action):
        self._t += 1
        return self._rng.standard_normal(3) + action, 1.0, self._t == 3, False, {}


def test_envs_with_a_legacy_random_state_continue_bit_for_bit():
    import io

    gym.register(id="LegacyRng-v0", entry_point=_LegacyRngEnv)
    try:
        envs = make_vec_env(EnvConfig(id="LegacyRng-v0"), 2)
        envs.action_space.seed(1)
        envs.reset(seed=0)
        for _ in range(7):  # past two autoresets, mid-episode
            envs.step(envs.action_space.sample())
        buffer = io.BytesIO()
        torch.save(envs.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        expected = [envs.step(envs.action_space.sample()) for _ in range(10)]
        restored = make_vec_env(EnvConfig(id="LegacyRng-v0"), 2)
        messages = []
        restored.notify = messages.append
        restored.load_state_dict(state)
        restored.reset(seed=99)
        for want in expected:
            np.testing.assert_array_equal(restored.step(restored.action_space.sample()).obs, want.obs)
        assert messages == []  # rebuilt by replay, not started afresh
    finally:
        gym.registry.pop("LegacyRng-v0")


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


class _SpaceEnv(gym.Env):
    """An env that shows an observation space (sampled) and never ends by itself."""

    def __init__(self, space: gym.Space) -> None:
        self.observation_space, self.action_space = space, gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize(
    "space, shape, sizes",
    [
        (gym.spaces.Discrete(5), (5,), (5,)),
        (gym.spaces.Discrete(4, start=-2), (4,), (4,)),
        (gym.spaces.MultiDiscrete([2, 3]), (5,), (2, 3)),
        (gym.spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 1], [0, 2]]), (14,), (2, 3, 4, 5)),
        (gym.spaces.MultiBinary(4), (4,), None),
        (gym.spaces.Tuple((gym.spaces.Discrete(32), gym.spaces.Discrete(11), gym.spaces.Discrete(2))), (45,),
         (32, 11, 2)),
        (gym.spaces.Dict({"z": gym.spaces.Discrete(3), "a": gym.spaces.MultiDiscrete([4, 2])}), (9,), (4, 2, 3)),
        (gym.spaces.Dict({"a": gym.spaces.Discrete(3), "b": gym.spaces.Box(0, 1, (2,))}), (5,), None),
        (gym.spaces.Box(0, 1, (2, 3)), (6,), None),
    ],
)
def test_observation_spaces_become_float32_vectors_with_one_hot_parts(space, shape, sizes):
    env = adapt_observations(_SpaceEnv(space))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == shape and obs.shape == shape and obs.dtype == np.float32
    assert one_hot_sizes(space) == sizes
    assert isinstance(env.observation_space, OneHotBox) == (sizes is not None)
    if sizes is not None:  # one-hot in each segment, in Gymnasium's flattening order
        assert env.observation_space.sizes == sizes
        observations = np.stack([obs, *(env.step(0)[0] for _ in range(20))])
        segments = np.split(observations, np.cumsum(sizes)[:-1], axis=1)
        assert all((segment.sum(1) == 1).all() for segment in segments)
        codec = OneHotIndices(sizes, torch.float32, torch.device("cpu"))
        indices = codec.encode(observations)
        assert indices.shape == (21, len(sizes)) and len(np.unique(indices, axis=0)) > 1
        assert torch.equal(codec.decode(torch.from_numpy(indices)), torch.from_numpy(observations))


def test_images_go_channels_first_and_other_spaces_are_refused_in_one_line():
    env = adapt_observations(_SpaceEnv(gym.spaces.Box(0, 255, (96, 96, 3), np.uint8)))
    assert env.observation_space.shape == (3, 96, 96) and env.reset(seed=0)[0].shape == (3, 96, 96)
    assert is_image(env.observation_space)
    with pytest.raises(ConfigError, match="observation space Text.*is not supported: rlrun trains on Box"):
        adapt_observations(_SpaceEnv(gym.spaces.Text(5)))


class _TwoRewardsEnv(gym.Env):
    """A multi-objective env: a reward of two numbers, declared in a `reward_space` (as
    MO-Gymnasium's envs do) when `declared`."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, declared: bool = True) -> None:
        if declared:
            self.reward_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), np.array([1.0, -0.5]), False, False, {}


SUMMED = [{"_target_": "gymnasium.wrappers.TransformReward",
           "func": {"_target_": "numpy.sum", "_partial_": True}}]


def test_vector_rewards_are_refused_in_one_line_unless_a_wrapper_makes_them_one():
    from rlrun.envs.factory import env_spaces

    gym.register(id="TwoRewards-v0", entry_point=_TwoRewardsEnv, max_episode_steps=5)
    try:
        with pytest.raises(ConfigError, match=r"^env TwoRewards-v0 returns rewards of shape \(2,\), "
                                              r"not one number: .* env.wrappers"):
            env_spaces(EnvConfig(id="TwoRewards-v0"))  # validation: before anything is written
        env_spaces(EnvConfig(id="TwoRewards-v0", wrappers=SUMMED))
        envs = make_vec_env(EnvConfig(id="TwoRewards-v0", wrappers=SUMMED), 1)
        envs.reset(seed=0)
        assert envs.step(np.zeros(1, np.int64)).rewards.tolist() == [0.5]
        undeclared = make_vec_env(EnvConfig(id="TwoRewards-v0", kwargs={"declared": False}), 1)
        undeclared.reset(seed=0)
        with pytest.raises(ConfigError, match=r"^an env returns rewards of shape \(2,\), not one"):
            undeclared.step(np.zeros(1, np.int64))
    finally:
        gym.registry.pop("TwoRewards-v0")


def test_an_env_without_time_limit_is_capped_as_a_truncation():
    envs = make_vec_env(EnvConfig(id="CliffWalking-v1", unlimited_max_episode_steps=7), 1)
    envs.reset(seed=0)
    for t in range(7):
        step = envs.step(np.zeros(1, np.int64))  # up, against the wall: never the goal
    assert step.truncations[0] and not step.terminations[0] and step.episode_lengths.tolist() == [7]
    capped = make_vec_env(EnvConfig(id="CliffWalking-v1"), 1, training=False, max_episode_steps=3)
    capped.reset(seed=0)
    assert [bool(capped.step(np.zeros(1, np.int64)).truncations[0]) for _ in range(3)] == [False, False, True]


@pytest.mark.slow
@pytest.mark.parametrize("algo, env", [("ppo", "Blackjack-v1"), ("dqn", "FrozenLake-v1"), ("sarsa", "Taxi-v4")])
def test_toy_text_envs_train(train_run, tmp_path, algo, env):
    extra = ["algo.learning_starts=100"] if algo == "dqn" else []
    result = train_run([f"algo={algo}", f"env={env}", "total_timesteps=600", "eval.episodes=2",
                        "eval.num_envs=1", *extra], tmp_path)
    assert result.global_step >= 600 and np.isfinite(result.final_eval_return)
