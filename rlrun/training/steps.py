"""Gradient steps: one clipped step of an optimizer on a loss, and a critic's regression steps."""

from __future__ import annotations

import torch

from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.policy_gradient import squared_error
from rlrun.training.optim import FlatOptimizer


def gradient_step(optimizer: FlatOptimizer, loss: torch.Tensor, max_grad_norm: float
                  ) -> torch.Tensor:
    """Back-propagate `loss` into zeroed gradients, clip them to `max_grad_norm` (0: no clip)
    and step; returns the global gradient norm before clipping (L2 norm)."""
    optimizer.zero_grad()
    loss.backward()
    grad_norm = optimizer.clip_grad_norm(max_grad_norm)
    optimizer.step()
    return grad_norm


def value_regression_steps(
    agent: ActorCritic,
    optimizer: FlatOptimizer,
    obs: torch.Tensor,
    returns: torch.Tensor,
    steps: int,
    max_grad_norm: float,
) -> dict[str, float]:
    """`steps` full-batch gradient steps of the critic on mean((V(s_t) - target)²) (book Alg.
    3.3)."""
    for _ in range(steps):
        value_loss = squared_error(agent.value(obs), returns)
        grad_norm = float(gradient_step(optimizer, value_loss, max_grad_norm))
    return {"train/value_loss": float(value_loss.detach()), "train/value_grad_norm": grad_norm}
