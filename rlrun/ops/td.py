"""Temporal-difference targets, losses and ε-greedy exploration for value-based control.

Book ch. 2: Q-learning target (eq. 2.3, with a target network as in Alg. 2.2/2.3), Double
Q-learning (ch. 2.8, in the Double DQN form of van Hasselt et al. 2016), SARSA (eq. 2.9) and
expected SARSA (eq. 2.12), the squared TD loss (eq. 2.5) and ε-greedy behaviour (ch. 2.1).

All targets take batched tensors: ``rewards`` and ``terminations`` of shape ``[B]`` and next-state
Q-values of shape ``[B, A]``. ``terminations`` is 1 only where the episode *terminated*: a truncated
transition is bootstrapped from its real final observation like any other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F


def epsilon_greedy(
    q_values: Tensor, epsilon: float, generator: torch.Generator | None = None
) -> Tensor:
    """Actions of the ε-greedy policy: argmax_a Q(s, a) (eq. 2.7), uniform with probability ε.

    Args:
        q_values: Q(s, ·), shape ``[B, A]``.
        epsilon: probability of replacing the greedy action by a uniformly random one.
        generator: torch generator for the random draws (the global one if None).

    Returns:
        Integer actions, shape ``[B]``.
    """
    greedy = q_values.argmax(-1)
    if epsilon <= 0.0:
        return greedy
    explore = torch.rand(greedy.shape, device=q_values.device, generator=generator) < epsilon
    uniform = torch.randint(
        q_values.shape[-1], greedy.shape, device=q_values.device, generator=generator
    )
    return torch.where(explore, uniform, greedy)


def epsilon_greedy_numpy(q_values: np.ndarray, epsilon: float) -> np.ndarray:
    """`epsilon_greedy` on numpy Q-values, with the same draws from torch's global generator."""
    greedy = q_values.argmax(-1)
    if epsilon <= 0.0:
        return greedy
    explore = torch.rand(greedy.shape).numpy() < epsilon
    uniform = torch.randint(q_values.shape[-1], greedy.shape).numpy()
    return np.where(explore, uniform, greedy)


def epsilon_greedy_probs(q_values: Tensor, epsilon: float) -> Tensor:
    """π(a|s) of the ε-greedy policy: ε/|A| for every action plus 1-ε on the greedy one."""
    probs = torch.full_like(q_values, epsilon / q_values.shape[-1])
    greedy = q_values.argmax(-1, keepdim=True)
    return probs.scatter_add_(-1, greedy, torch.full_like(greedy, 1.0 - epsilon, dtype=probs.dtype))


def td_target(rewards: Tensor, next_values: Tensor, terminations: Tensor, gamma: float) -> Tensor:
    """The one-step target y = r + γ (1 - done) v' of every TD method, with v' the value of the
    next state (a max, a chosen action's Q, an expectation, or a critic's estimate)."""
    return rewards + gamma * (1.0 - terminations) * next_values


def taken(q_values: Tensor, actions: Tensor) -> Tensor:
    """Q(s, a) of the actions taken: `q_values` [B, A] at integer `actions` [B], shape [B]."""
    return q_values.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def q_learning_target(rewards: Tensor, next_q: Tensor, terminations: Tensor, gamma: float) -> Tensor:
    """y = r + γ (1 - done) max_a' Q'(s', a') (eq. 2.3; Q' the target network of Alg. 2.2)."""
    return td_target(rewards, next_q.max(-1).values, terminations, gamma)


def double_q_target(
    rewards: Tensor, next_q_online: Tensor, next_q_target: Tensor, terminations: Tensor, gamma: float
) -> Tensor:
    """Double DQN: a* = argmax_a Q(s', a) by the online net, y = r + γ (1 - done) Q'(s', a*).

    The online network picks the action and the target network values it (book ch. 2.8:
    one estimator selects, the other evaluates), which removes the max-operator bias of 2.7.
    """
    best = next_q_online.argmax(-1, keepdim=True)
    return td_target(rewards, next_q_target.gather(-1, best).squeeze(-1), terminations, gamma)


def sarsa_target(
    rewards: Tensor, next_q: Tensor, next_actions: Tensor, terminations: Tensor, gamma: float
) -> Tensor:
    """y = r + γ (1 - done) Q(s', a') with a' the next action of the behaviour policy (eq. 2.9)."""
    return td_target(rewards, taken(next_q, next_actions), terminations, gamma)


def expected_sarsa_target(
    rewards: Tensor,
    next_q: Tensor,
    terminations: Tensor,
    gamma: float,
    epsilon: float,
    policy_q: Tensor | None = None,
) -> Tensor:
    """y = r + γ (1 - done) Σ_a π(a|s') Q(s', a) with π ε-greedy (eq. 2.12).

    π is ε-greedy in `policy_q` (the acting network's Q(s', ·)) when given, else in `next_q`.
    """
    probs = epsilon_greedy_probs(next_q if policy_q is None else policy_q, epsilon)
    return td_target(rewards, (probs * next_q).sum(-1), terminations, gamma)


def td_loss(q_values: Tensor, targets: Tensor, kind: str) -> Tensor:
    """Mean TD loss: squared error (``mse``, eq. 2.5) or Huber with δ=1 (``huber``).

    Huber is the squared error for |y - Q| <= 1 and linear beyond, i.e. the TD-error
    clipping of Mnih et al. (2015). ``targets`` are constants (semi-gradient, eq. 2.6).
    """
    if kind == "huber":
        return F.smooth_l1_loss(q_values, targets.detach())
    if kind == "mse":
        return F.mse_loss(q_values, targets.detach())
    raise ValueError(f"unknown TD loss {kind!r}; choose from huber, mse")


def critic_regression_loss(q_values: Tensor, targets: Tensor) -> Tensor:
    """Squared error of an ensemble of K critics' Q(s, a) (`q_values` [K, B]) to fixed `targets`
    [B]: averaged over the batch, summed over the critics (DDPG's one critic, the twins of TD3
    and SAC)."""
    return (q_values - targets).square().mean(1).sum()
