import torch
from conftest import col

from rlrun.ops.returns import discounted_returns, explained_variance, gae, standardize


def test_gae_matches_hand_computed_values():
    # Three steps, one env, no episode end: deltas d_t = r_t + g V_{t+1} - V_t.
    rewards, values, next_values = col([1.0, 0.0, 2.0]), col([0.5, 1.0, 0.0]), col([1.0, 0.0, 3.0])
    zeros = col([0.0, 0.0, 0.0])
    gamma, lam = 0.9, 0.8
    d = [1 + 0.9 * 1.0 - 0.5, 0 + 0.9 * 0.0 - 1.0, 2 + 0.9 * 3.0 - 0.0]  # 1.4, -1.0, 4.7
    a2 = d[2]
    a1 = d[1] + 0.72 * a2
    a0 = d[0] + 0.72 * a1
    advantages, returns = gae(rewards, values, next_values, zeros, zeros, gamma, lam)
    torch.testing.assert_close(advantages, col([a0, a1, a2]))
    torch.testing.assert_close(returns, col([a0 + 0.5, a1 + 1.0, a2 + 0.0]))


def test_gae_bootstraps_through_truncation_but_not_termination():
    rewards, values = col([1.0, 1.0]), col([0.0, 0.0])
    next_values = col([5.0, 7.0])  # value of the real final observation at t=0, and of s_2
    ends = col([1.0, 0.0])
    truncated = gae(rewards, values, next_values, col([0.0, 0.0]), ends, 0.5, 1.0)[0]
    terminated = gae(rewards, values, next_values, col([1.0, 0.0]), ends, 0.5, 1.0)[0]
    # Episode ends at t=0: the recursion does not cross into t=1 in either case.
    torch.testing.assert_close(truncated, col([1.0 + 0.5 * 5.0, 1.0 + 0.5 * 7.0]))
    torch.testing.assert_close(terminated, col([1.0, 1.0 + 0.5 * 7.0]))


def test_gae_lambda_one_is_monte_carlo_minus_baseline():
    rewards = torch.rand(6, 3)
    values = torch.rand(6, 3)
    zeros = torch.zeros(6, 3)
    next_values = torch.cat([values[1:], torch.zeros(1, 3)])
    advantages, _ = gae(rewards, values, next_values, zeros, zeros, 0.95, 1.0)
    mc = discounted_returns(rewards, zeros, 0.95)
    torch.testing.assert_close(advantages, mc - values)


def test_discounted_returns_reset_at_episode_end_and_bootstrap():
    rewards = col([1.0, 2.0, 3.0])
    ends = col([0.0, 1.0, 0.0])
    returns = discounted_returns(rewards, ends, 0.5, bootstrap=torch.tensor([10.0]))
    torch.testing.assert_close(returns, col([1.0 + 0.5 * 2.0, 2.0, 3.0 + 0.5 * 10.0]))


def test_explained_variance():
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(targets, targets) == 1.0
    assert abs(explained_variance(torch.full((4,), 2.5), targets)) < 1e-6


def test_standardize_whole_tensor_or_per_slice():
    x = torch.tensor([[1.0, 3.0], [2.0, 10.0]])
    whole = standardize(x)
    torch.testing.assert_close(whole.mean(), torch.tensor(0.0))
    torch.testing.assert_close(whole.std(), torch.tensor(1.0), atol=1e-6, rtol=0)
    rows = standardize(x, dim=1)  # each row on its own: std of two values a, b is |a - b| / sqrt(2)
    half = 2**-0.5
    torch.testing.assert_close(rows, torch.tensor([[-half, half], [-half, half]]), atol=1e-6, rtol=0)
    one = torch.tensor([5.0])  # fewer than two samples: unchanged (no nan std)
    assert standardize(one) is one
    assert standardize(x[:, :1], dim=1).equal(x[:, :1])
