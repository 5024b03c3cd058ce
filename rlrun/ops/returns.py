"""Advantage and return estimators (book ch. 3.4 reward-to-go, ch. 5 GAE) and their statistics.

All functions take time-major tensors `[T, N]` (T steps of N parallel envs) and keep
terminations and truncations apart: a value is bootstrapped through a truncation (the
caller passes the value of the real final observation) and never through a termination.
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    episode_ends: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, book eqs. 5.1, 5.6-5.7: A_t = sum_l (γλ)^l δ_{t+l}.

    Args:
        rewards: r_t, shape [T, N].
        values: V(s_t), shape [T, N].
        next_values: V(s_{t+1}) of the real next state (the final observation when the
            episode ended at t), shape [T, N].
        terminations: 1 where s_{t+1} is terminal (no bootstrap), shape [T, N].
        episode_ends: 1 where the episode ended at t (terminated or truncated): the
            advantage recursion does not cross into the next episode, shape [T, N].
        gamma: discount γ.
        lam: GAE λ (0 gives the one-step TD error, 1 the Monte Carlo advantage).

    Returns:
        (advantages, returns) with returns = advantages + values, each [T, N].
    """
    deltas = rewards + gamma * next_values * (1.0 - terminations) - values
    carry = gamma * lam * (1.0 - episode_ends)
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


def discounted_returns(
    rewards: torch.Tensor,
    episode_ends: torch.Tensor,
    gamma: float,
    bootstrap: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discounted reward-to-go G_t = r_t + γ G_{t+1}, reset at episode ends (book ch. 3.4).

    Args:
        rewards: r_t, shape [T, N].
        episode_ends: 1 where the episode ended at t, shape [T, N].
        gamma: discount γ.
        bootstrap: value added after the last step for unfinished episodes, shape [N];
            zeros if None.

    Returns:
        Returns G_t, shape [T, N].
    """
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0]) if bootstrap is None else bootstrap
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running * (1.0 - episode_ends[t])
        returns[t] = running
    return returns


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """1 - Var[targets - predictions] / Var[targets]; nan when the targets are constant."""
    var_targets = targets.var()
    if var_targets == 0:
        return float("nan")
    return float(1.0 - (targets - predictions).var() / var_targets)


def standardize(x: torch.Tensor, dim: int | None = None, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / (std + eps) over all of `x`, or along `dim` for each slice on its own.

    `x` is returned unchanged when it holds fewer than two samples to standardise over.
    """
    if (x.numel() if dim is None else x.shape[dim]) < 2:
        return x
    if dim is None:
        return (x - x.mean()) / (x.std() + eps)
    return (x - x.mean(dim, keepdim=True)) / (x.std(dim, keepdim=True) + eps)
