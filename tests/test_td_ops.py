"""TD targets, losses and ε-greedy exploration (rlrun.ops.td) on hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlrun.data.replay import ReplayBuffer
from rlrun.ops.schedule import linear_schedule
from rlrun.ops.td import (
    critic_regression_loss,
    double_q_target,
    epsilon_greedy,
    epsilon_greedy_probs,
    expected_sarsa_target,
    q_learning_target,
    sarsa_target,
    taken,
    td_loss,
    td_target,
)


@pytest.mark.parametrize(
    "step, expected", [(0, 1.0), (25, 0.775), (50, 0.55), (100, 0.1), (250, 0.1)]
)
def test_linear_schedule(step, expected):
    assert math.isclose(linear_schedule(1.0, 0.1, 100, step), expected, rel_tol=1e-12)


def test_linear_schedule_without_duration_is_the_end_value():
    assert linear_schedule(1.0, 0.05, 0, 0) == 0.05


def test_epsilon_zero_is_greedy_and_one_is_uniform():
    q = torch.tensor([[1.0, 3.0, 2.0], [5.0, -1.0, 0.0]])
    assert epsilon_greedy(q, 0.0).tolist() == [1, 0]
    many = q[torch.zeros(30_000, dtype=torch.long)]
    counts = torch.bincount(
        epsilon_greedy(many, 1.0, torch.Generator().manual_seed(0)), minlength=3
    )
    assert torch.allclose(counts / 30_000, torch.full((3,), 1 / 3), atol=0.01)


def test_epsilon_greedy_frequencies_match_its_probabilities():
    q = torch.tensor([[0.0, 2.0, 1.0, -1.0]]).repeat(40_000, 1)
    actions = epsilon_greedy(q, 0.4, torch.Generator().manual_seed(1))
    frequencies = torch.bincount(actions, minlength=4) / len(actions)
    # greedy action 1: 1 - 0.4 + 0.4 / 4 = 0.7; each other action 0.4 / 4 = 0.1
    assert torch.allclose(frequencies, torch.tensor([0.1, 0.7, 0.1, 0.1]), atol=0.01)
    assert torch.allclose(epsilon_greedy_probs(q[:1], 0.4), torch.tensor([[0.1, 0.7, 0.1, 0.1]]))


def test_q_learning_target_by_hand():
    rewards = torch.tensor([1.0, 0.5, 2.0])
    next_q = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.0, 5.0]])
    dones = torch.tensor([0.0, 0.0, 1.0])
    # 1 + 0.9 * 2 ; 0.5 + 0.9 * 3 ; terminal: 2
    assert torch.allclose(
        q_learning_target(rewards, next_q, dones, 0.9), torch.tensor([2.8, 3.2, 2.0])
    )


def test_truncated_transitions_bootstrap_and_terminated_do_not():
    """Through the replay buffer: only terminations stop bootstrapping, next_obs the real final obs."""
    buffer = ReplayBuffer(8, (1,), (), 2, action_dtype=torch.int64)
    obs = np.array([[0.0], [1.0]], np.float32)
    final_obs = np.array([[10.0], [20.0]], np.float32)  # env 0 truncated, env 1 terminated
    buffer.add(
        obs,
        final_obs,
        np.array([0, 1]),
        np.array([1.0, 1.0], np.float32),
        np.array([False, True]),
        np.array([True, False]),
    )
    batch = buffer.sample(64, torch.Generator().manual_seed(0))
    next_q = torch.cat([batch.next_obs, 2 * batch.next_obs], dim=1)  # Q(s', ·) = [s', 2 s']
    targets = q_learning_target(batch.rewards, next_q, batch.terminations, 0.5)
    truncated = batch.obs[:, 0] == 0.0
    assert truncated.any() and (~truncated).any()
    assert torch.all(targets[truncated] == 1.0 + 0.5 * 20.0)  # bootstraps from the final obs 10
    assert torch.all(targets[~truncated] == 1.0)


def test_double_q_target_values_the_online_argmax_with_the_target_net():
    rewards, dones = torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 0.0, 1.0])
    online = torch.tensor([[1.0, 2.0], [5.0, 0.0], [0.0, 9.0]])  # argmax 1, 0, 1
    target = torch.tensor([[10.0, -3.0], [7.0, 9.0], [4.0, 4.0]])
    # 0 + 0.5 * target[0, 1] ; 1 + 0.5 * target[1, 0] ; terminal: 3
    expected = torch.tensor([-1.5, 4.5, 3.0])
    assert torch.allclose(double_q_target(rewards, online, target, dones, 0.5), expected)
    # plain Q-learning takes the target net's own max: 0 + 5 and 1 + 4.5
    assert torch.allclose(
        q_learning_target(rewards, target, dones, 0.5), torch.tensor([5.0, 5.5, 3.0])
    )


def test_sarsa_target_uses_the_next_action_taken():
    rewards, dones = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])
    next_q = torch.tensor([[1.0, 2.0], [3.0, 4.0], [8.0, 8.0]])
    next_actions = torch.tensor([0, 1, 1])
    # 1 + 0.9 * 1 ; 1 + 0.9 * 4 ; terminal: 1
    assert torch.allclose(
        sarsa_target(rewards, next_q, next_actions, dones, 0.9), torch.tensor([1.9, 4.6, 1.0])
    )


def test_expected_sarsa_target_by_hand():
    rewards, dones = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    next_q = torch.tensor([[1.0, 3.0], [2.0, 6.0]])
    # ε = 0.2: π = [0.1, 0.9], Σ π Q = 0.1 + 2.7 = 2.8 ; y = 1 + 0.5 * 2.8 ; terminal: 0
    assert torch.allclose(
        expected_sarsa_target(rewards, next_q, dones, 0.5, 0.2), torch.tensor([2.4, 0.0])
    )
    # ε = 0 is Q-learning; ε = 1 bootstraps with the mean over actions
    assert torch.allclose(
        expected_sarsa_target(rewards, next_q, dones, 0.5, 0.0),
        q_learning_target(rewards, next_q, dones, 0.5),
    )
    assert torch.allclose(
        expected_sarsa_target(rewards, next_q, dones, 0.5, 1.0), torch.tensor([2.0, 0.0])
    )
    # π from another network's Q (the acting one) that prefers action 0: Σ π Q = 0.9 + 0.3 = 1.2
    policy_q = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(
        expected_sarsa_target(rewards, next_q, dones, 0.5, 0.2, policy_q), torch.tensor([1.6, 0.0])
    )


def test_td_losses_by_hand_and_targets_get_no_gradient():
    q = torch.tensor([1.0, 3.0], requires_grad=True)
    targets = torch.tensor([1.5, 1.0], requires_grad=True)
    # errors 0.5 and 2: huber 0.5 * 0.25 = 0.125 and 2 - 0.5 = 1.5 ; squared 0.25 and 4
    assert math.isclose(td_loss(q, targets, "huber").item(), (0.125 + 1.5) / 2, rel_tol=1e-6)
    loss = td_loss(q, targets, "mse")
    assert math.isclose(loss.item(), (0.25 + 4.0) / 2, rel_tol=1e-6)
    loss.backward()
    assert targets.grad is None
    assert torch.allclose(q.grad, torch.tensor([-0.5, 2.0]))  # d/dq mean((q - y)^2) = (q - y)
    with pytest.raises(ValueError):
        td_loss(q, targets, "l1")


def test_td_target_taken_and_critic_regression_loss_by_hand():
    rewards, dones = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    # y = r + 0.5 (1 - done) v': the second transition terminated and keeps only its reward
    targets = td_target(rewards, torch.tensor([4.0, 10.0]), dones, 0.5)
    assert torch.equal(targets, torch.tensor([3.0, 2.0]))
    q_values = torch.tensor([[1.0, 7.0], [5.0, -2.0]])
    assert torch.equal(taken(q_values, torch.tensor([1, 0])), torch.tensor([7.0, 5.0]))
    # two critics: errors [-2, 0] -> mean square 2 ; [0, 1] -> 0.5 ; summed over critics
    q = torch.tensor([[1.0, 2.0], [3.0, 3.0]], requires_grad=True)
    loss = critic_regression_loss(q, targets)
    assert loss.item() == 2.5
    loss.backward()
    assert torch.equal(q.grad, torch.tensor([[-2.0, 0.0], [0.0, 1.0]]))  # d/dq mean_b (q - y)^2
