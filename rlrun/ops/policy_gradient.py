"""The score-function actor-critic loss and its gradient step (REINFORCE, A2C, off-policy AC).

Book eq. 3.29: ∇J = E[Σ_t ∇log π(a_t|s_t) Φ_t], estimated here as the mean over the batch's
steps of ∇log π(a_t|s_t) · w_t Φ_t, where Φ_t is an advantage (or a return) and w_t an optional
per-step weight (a truncated importance weight for off-policy data, book ch. 4). The critic
regresses V(s_t) on a target (book eq. 3.31), in the same gradient step or in steps of its own.
"""

from __future__ import annotations

import torch

from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.ops.optim import FlatOptimizer
from rlrun.ops.returns import explained_variance, standardize


def actor_critic_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor | None,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -mean(log π · Φ) + c_v mean((V - target)²) - c_e mean(H) and its parts.

    Args:
        logprobs: log π(a_t|s_t) of the taken actions, with gradient, shape [B].
        advantages: Φ_t (already weighted and normalised as wanted, no gradient), shape [B].
        new_values: V(s_t) with gradient, shape [B]; None when there is no critic to train.
        returns: the critic's regression targets, shape [B].
        entropy: policy entropy per state, shape [B].
        vf_coef: value loss coefficient c_v.
        ent_coef: entropy bonus coefficient c_e.
    """
    policy_loss = -(logprobs * advantages).mean()
    entropy_mean = entropy.mean()
    loss = with_entropy_bonus(policy_loss, entropy_mean, ent_coef)
    stats = {"policy_loss": policy_loss.detach(), "entropy": entropy_mean.detach()}
    if new_values is not None:
        value_loss = (new_values - returns).square().mean()
        loss = loss + vf_coef * value_loss
        stats["value_loss"] = value_loss.detach()
    return loss, stats


def actor_critic_step(
    agent: ActorCritic,
    optimizer: FlatOptimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    *,
    vf_coef: float,
    ent_coef: float,
    max_grad_norm: float,
    norm_adv: bool,
    weights: torch.Tensor | None = None,
) -> dict[str, float]:
    """One gradient step on `actor_critic_loss` over a whole flat batch; returns `train/` metrics.

    Advantages are normalised first (if `norm_adv`), then multiplied by `weights` (if given).
    The critic is trained only when `vf_coef` > 0. `old_values` are the critic's predictions
    used to form the advantages (for the explained variance of the targets).
    """
    train_critic = vf_coef > 0
    if norm_adv:
        advantages = standardize(advantages)
    if weights is not None:
        advantages = weights * advantages
    dist, new_values = agent.dist_and_value(obs) if train_critic else (agent.dist(obs), None)
    loss, stats = actor_critic_loss(dist.log_prob(actions), advantages, new_values, returns, dist.entropy(),
                                    vf_coef, ent_coef)
    optimizer.zero_grad()
    loss.backward()
    grad_norm = float(optimizer.clip_grad_norm(max_grad_norm))
    optimizer.step()
    metrics = {f"train/{key}": float(value) for key, value in stats.items()}
    metrics["train/grad_norm"] = grad_norm
    if train_critic:
        metrics["train/explained_variance"] = explained_variance(old_values, returns)
    return metrics


def value_regression_steps(
    agent: ActorCritic,
    optimizer: FlatOptimizer,
    obs: torch.Tensor,
    returns: torch.Tensor,
    steps: int,
    max_grad_norm: float,
) -> dict[str, float]:
    """`steps` full-batch gradient steps of the critic on mean((V(s_t) - target)²) (book Alg. 3.3)."""
    for _ in range(steps):
        value_loss = (agent.value(obs) - returns).square().mean()
        optimizer.zero_grad()
        value_loss.backward()
        grad_norm = float(optimizer.clip_grad_norm(max_grad_norm))
        optimizer.step()
    return {"train/value_loss": float(value_loss.detach()), "train/value_grad_norm": grad_norm}
