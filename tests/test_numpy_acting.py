"""The numpy acting path draws the same actions, log-probabilities and values as the torch one."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlrun.config import NetworkConfig
from rlrun.data.rollout import NumpySampler, RolloutBuffer, TorchSampler, make_sampler
from rlrun.networks import numpy_acting
from rlrun.networks.actor_critic import ActorCritic

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
SPACES = {
    "gaussian": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
    "categorical": gym.spaces.Discrete(5),
}


def _agent(action_space, **network) -> ActorCritic:
    torch.manual_seed(0)
    agent = ActorCritic(NetworkConfig(**network), BOX_OBS, action_space)
    with torch.no_grad():  # non-trivial heads: the default init makes the policy output near zero
        for p in agent.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return agent


@pytest.mark.parametrize("head", sorted(SPACES))
@pytest.mark.parametrize("network", [{}, {"shared": True}, {"activation": "relu", "hidden_sizes": [32, 16, 8]},
                                     {"hidden_sizes": [128, 128]}])
@pytest.mark.parametrize("rows", [1, 7])
def test_numpy_sampler_matches_torch(head, network, rows):
    agent = _agent(SPACES[head], **network)
    obs = np.random.default_rng(rows).normal(size=(rows, 11)).astype(np.float32)
    torch.manual_seed(1)
    with torch.no_grad():
        expected = [t.numpy() for t in TorchSampler(agent, agent, torch.device("cpu")).act(torch.as_tensor(obs))]
        expected_value = TorchSampler(agent, agent, torch.device("cpu")).value(torch.as_tensor(obs)).numpy()
    torch.manual_seed(1)
    sampler = NumpySampler(agent, agent, rows)
    if network == {"hidden_sizes": [128, 128]}:
        assert (sampler.branches is None) == (rows == 1)  # 7 rows: two products are cheaper
    actions, logprobs, values = sampler.act(obs)
    np.testing.assert_allclose(actions, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logprobs, expected[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(values, expected[2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sampler.value(obs), expected_value, rtol=1e-5, atol=1e-5)
    assert torch.rand(()).item() == pytest.approx(_next_uniform_after_one_draw(head, rows))


def _next_uniform_after_one_draw(head, rows):
    """Both paths must consume torch's generator identically (resume replays it)."""
    torch.manual_seed(1)
    shape = (rows, 3) if head == "gaussian" else (rows, 5)
    torch.randn(shape) if head == "gaussian" else torch.rand(shape)
    return torch.rand(()).item()


def test_numpy_sampler_snapshots_the_weights():
    """The joined weights are copies: a sampler acts with the weights it was built from, and
    `collect_rollout` builds one per rollout, after the previous update."""
    agent = _agent(SPACES["gaussian"])
    obs = np.ones((1, 11), np.float32)
    before = NumpySampler(agent, agent, 1)
    value = before.value(obs).copy()
    with torch.no_grad():
        agent.value_head.bias.add_(1.0)
    np.testing.assert_array_equal(before.value(obs), value)
    np.testing.assert_allclose(NumpySampler(agent, agent, 1).value(obs), value + 1.0, rtol=1e-6)


def test_behaviour_actor_and_separate_critic():
    actor, critic = _agent(SPACES["gaussian"]), _agent(SPACES["gaussian"], hidden_sizes=[16, 8])
    obs = np.random.default_rng(0).normal(size=(4, 11)).astype(np.float32)
    torch.manual_seed(2)
    with torch.no_grad():
        expected = [t.numpy() for t in TorchSampler(actor, critic, torch.device("cpu")).act(torch.as_tensor(obs))]
    torch.manual_seed(2)
    got = NumpySampler(actor, critic, 4).act(obs)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def _buffer(num_envs, obs_space=BOX_OBS):
    return RolloutBuffer(4, num_envs, obs_space, SPACES["gaussian"], torch.device("cpu"))


def test_sampler_choice():
    agent = _agent(SPACES["gaussian"])
    assert isinstance(make_sampler(agent, agent, _buffer(4)), NumpySampler)
    assert isinstance(make_sampler(agent, agent, _buffer(numpy_acting.MAX_ROWS + 1)), TorchSampler)
    gelu = _agent(SPACES["gaussian"], activation="gelu")
    assert isinstance(make_sampler(gelu, gelu, _buffer(4)), TorchSampler)
    discrete_obs = ActorCritic(NetworkConfig(), gym.spaces.Discrete(6), SPACES["gaussian"])
    assert isinstance(make_sampler(discrete_obs, discrete_obs, _buffer(4)), TorchSampler)
    deeper_critic = _agent(SPACES["gaussian"], hidden_sizes=[16, 16, 16])
    assert isinstance(make_sampler(_agent(SPACES["gaussian"]), deeper_critic, _buffer(4)), TorchSampler)
    double = _agent(SPACES["gaussian"]).double()
    assert isinstance(make_sampler(double, double, _buffer(4)), TorchSampler)


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_numpy_q_network_and_epsilon_greedy_match_torch(epsilon):
    from rlrun.networks.q import QNetwork
    from rlrun.ops.td import epsilon_greedy, epsilon_greedy_numpy

    torch.manual_seed(0)
    q_network = QNetwork(NetworkConfig(activation="relu", hidden_sizes=[32, 32]), BOX_OBS, gym.spaces.Discrete(4))
    obs = np.random.default_rng(0).normal(size=(9, 11)).astype(np.float32)
    numpy_q = numpy_acting.NumpyQNetwork(q_network)
    with torch.no_grad():
        expected_q = q_network(torch.as_tensor(obs))
    np.testing.assert_allclose(numpy_q(obs), expected_q.numpy(), rtol=1e-5, atol=1e-5)
    torch.manual_seed(3)
    expected = epsilon_greedy(expected_q, epsilon).numpy()
    torch.manual_seed(3)
    np.testing.assert_array_equal(epsilon_greedy_numpy(numpy_q(obs), epsilon), expected)
    assert numpy_acting.supports_q(q_network, 9)
    assert not numpy_acting.supports_q(q_network, numpy_acting.MAX_ROWS + 1)


# ----- every head on every observation kind the env adapter produces --------------------------
class _DictObs(gym.Env):
    """Dict observations of a Box and a Discrete part, flattened by `adapt_observations`."""

    observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-2.0, 2.0, (3,), np.float32),
                                         "room": gym.spaces.Discrete(4)})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}


OBS_KINDS = {  # name: (raw env, whether the adapted space is a one-hot vector)
    "box": (lambda: gym.make("Pendulum-v1"), False),
    "one_hot": (lambda: gym.make("Taxi-v4"), True),
    "multi_discrete": (lambda: gym.make("Blackjack-v1"), True),
    "dict": (_DictObs, False),
}


def _adapted_obs(kind, rows):
    """The adapted observation space of an `OBS_KINDS` env and `rows` observations of it."""
    from rlrun.envs.factory import OneHotBox, adapt_observations

    make, one_hot = OBS_KINDS[kind]
    envs = [adapt_observations(make()) for _ in range(rows)]
    space = envs[0].observation_space
    assert isinstance(space, gym.spaces.Box) and len(space.shape) == 1
    assert isinstance(space, OneHotBox) == one_hot
    return space, np.stack([env.reset(seed=i)[0] for i, env in enumerate(envs)])


@pytest.mark.parametrize("head", sorted(SPACES))
@pytest.mark.parametrize("kind", sorted(OBS_KINDS))
def test_every_head_on_every_observation_kind_matches_torch(head, kind):
    space, obs = _adapted_obs(kind, rows=6)
    torch.manual_seed(0)
    agent = ActorCritic(NetworkConfig(), space, SPACES[head])
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(0.3 * torch.randn_like(p))
    buffer = RolloutBuffer(4, len(obs), space, SPACES[head], torch.device("cpu"))
    sampler = make_sampler(agent, agent, buffer)
    assert isinstance(sampler, NumpySampler)
    torch.manual_seed(5)
    with torch.no_grad():
        expected = [t.numpy() for t in TorchSampler(agent, agent, torch.device("cpu")).act(torch.as_tensor(obs))]
    after_torch = torch.rand(())
    torch.manual_seed(5)
    got = sampler.act(obs)
    assert torch.rand(()) == after_torch  # the same draws from torch's generator
    if head == "categorical":
        np.testing.assert_array_equal(got[0], expected[0])
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_image_observations_act_with_torch():
    space = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)
    for head in SPACES.values():
        agent = ActorCritic(NetworkConfig(name="cnn"), space, head)
        assert isinstance(make_sampler(agent, agent, RolloutBuffer(4, 2, space, head, torch.device("cpu"))),
                          TorchSampler)


@pytest.mark.parametrize("kind", sorted(OBS_KINDS))
def test_q_network_on_every_observation_kind_matches_torch(kind):
    from rlrun.networks.q import QNetwork

    space, obs = _adapted_obs(kind, rows=6)
    torch.manual_seed(0)
    q_network = QNetwork(NetworkConfig(hidden_sizes=[16, 16]), space, gym.spaces.Discrete(3))
    assert numpy_acting.supports_q(q_network, len(obs))
    with torch.no_grad():
        expected = q_network(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(numpy_acting.NumpyQNetwork(q_network)(obs), expected, rtol=1e-5, atol=1e-6)
    image = QNetwork(NetworkConfig(name="cnn"), gym.spaces.Box(0, 255, (4, 36, 36), np.uint8), gym.spaces.Discrete(3))
    assert not numpy_acting.supports_q(image, 2)
