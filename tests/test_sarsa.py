"""SARSA and expected SARSA: target wiring, truncation handling, refusal, smoke runs, learning."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from conftest import read_metrics

from rlrun.algos import sarsa
from rlrun.config import ConfigError
from rlrun.run.checkpoint_files import load_checkpoint

TINY = [
    "algo=sarsa",
    "env.num_envs=2",
    "algo.num_steps=4",
    "eval.episodes=2",
    "eval.num_envs=2",
    "eval.every_steps=0",
    "algo.log_every=16",
]


class LinearQ(torch.nn.Module):
    """Q(s, ·) = [a s_0, b s_0] for observations s."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.a * obs[:, 0], self.b * obs[:, 0]], dim=1)


def _batch() -> sarsa.SarsaBatch:
    batch = sarsa.SarsaBatch(2, 1, gym.spaces.Box(-10, 10, (1,)), torch.device("cpu"))
    batch.next_obs[:, 0, 0] = torch.tensor([3.0, 5.0])
    batch.next_actions[:, 0] = torch.tensor([0, 1])
    batch.rewards[:, 0] = torch.tensor([1.0, 2.0])
    batch.terminations[:, 0] = torch.tensor([0.0, 1.0])
    return batch


@pytest.mark.parametrize(
    "expected, targets",
    [
        # target net Q(s'=3) = [3, 6]; SARSA takes the next action a'=0 -> 3 ; row 2 terminated
        (False, [1.0 + 0.5 * 3.0, 2.0]),
        # the online net prefers action 0 ([6, 3]): with ε=0.2, π = [0.9, 0.1] weighs target values
        (True, [1.0 + 0.5 * (0.9 * 3.0 + 0.1 * 6.0), 2.0]),
    ],
)
def test_targets_bootstrap_with_the_next_action_or_its_expectation(expected, targets):
    algo = sarsa.SarsaConfig(gamma=0.5, expected=expected)
    online, target = LinearQ(2.0, 1.0), LinearQ(1.0, 2.0)
    result = sarsa.sarsa_targets(online, target, _batch(), algo, epsilon=0.2)
    assert torch.allclose(result, torch.tensor(targets))


def test_truncated_steps_bootstrap_from_the_real_final_observation(
    train_run, tmp_path, monkeypatch
):
    seen = []
    original = sarsa.sarsa_targets

    def spy(q_network, target_network, batch, algo, epsilon):
        seen.append(
            {name: getattr(batch, name).clone() for name in ("obs", "next_obs", "terminations")}
        )
        return original(q_network, target_network, batch, algo, epsilon)

    monkeypatch.setattr(sarsa, "sarsa_targets", spy)
    train_run(
        [*TINY, "env.max_episode_steps=5", "algo.num_steps=20", "total_timesteps=40"], tmp_path
    )
    batch = seen[0]
    follows = (batch["next_obs"][:-1] == batch["obs"][1:]).all(-1)  # [T-1, N]
    # Episodes of 5 steps (fewer if the pole falls): at t = 4 every env was truncated or terminated.
    assert not follows[4].any()
    ended = ~follows
    assert ended.sum() >= 6 and follows.sum() >= 20
    truncated = ended & (batch["terminations"][:-1] == 0)
    assert truncated.any()
    # CartPole's Euler step moves the cart by x' = x + 0.02 ẋ: s' is the real successor, not a reset
    obs, next_obs = batch["obs"][:-1][truncated], batch["next_obs"][:-1][truncated]
    assert torch.allclose(next_obs[:, 0], obs[:, 0] + 0.02 * obs[:, 1], atol=1e-6)


def test_continuous_actions_are_refused(train_run, tmp_path):
    env = gym.make("Pendulum-v1")
    with pytest.raises(ConfigError, match=r"algo=sarsa needs Discrete actions"):
        sarsa.SPEC.check_spaces(env.observation_space, env.action_space)
    with pytest.raises(ConfigError, match="Pendulum-v1 has continuous"):
        train_run(["algo=sarsa", "env=Pendulum-v1", *TINY[1:], "total_timesteps=64"], tmp_path)


@pytest.mark.parametrize(
    "variant, modules",
    [
        ([], {"q_network", "target_network", "optimizer", "envs", "next_actions"}),
        (
            ["algo.expected=true", "algo.target_update_every=0"],
            {"q_network", "optimizer", "envs", "next_actions"},
        ),
    ],
)
def test_sarsa_smoke(train_run, tmp_path, variant, modules):
    result = train_run([*TINY, "total_timesteps=256", *variant], tmp_path)
    assert result.global_step == 256 and math.isfinite(result.final_eval_return)
    rows = read_metrics(tmp_path)
    keys = set().union(*rows)
    for key in (
        "train/loss",
        "train/q_values",
        "train/grad_norm",
        "train/epsilon",
        "train/lr",
        "eval/return_mean",
    ):
        assert key in keys, key
    assert set(load_checkpoint(tmp_path / "checkpoints" / "last.pt")["modules"]) == modules


@pytest.mark.slow
@pytest.mark.parametrize("expected", [False, True], ids=["sarsa", "expected_sarsa"])
def test_sarsa_beats_random_on_cartpole(learn, tmp_path, expected):
    # the classic preset, 100k steps. SARSA's runs are fragile (docs/benchmarks.md): seeds 0-4
    # scored 193, 500, 500, 500, 210 (expected SARSA: 418, 500, 240, 440, 173) on one CPU, and
    # seeds 0-2 494, 64.5, 500 (expected: 327, 84, 219) on another, whose float rounding differs.
    # Each seed must score more than twice a random policy's 23.7 (rlrun/results/reference/random.csv).
    results = learn(["algo=sarsa", f"algo.expected={str(expected).lower()}"], tmp_path, 50)
    assert {result.global_step for result in results.values()} == {100_000}
