"""Fitting and measuring a reward-model ensemble on preference comparisons (book ch. 14.3, eqs.
14.5-14.7; each member weighs every comparison by its own bootstrap count)."""

from __future__ import annotations

import torch

from rlrun.data.preferences import PreferenceDataset
from rlrun.networks.reward_ensemble import RewardEnsemble
from rlrun.ops.preferences import (
    bradley_terry_loss,
    pearson_correlation,
    preference_accuracy,
    preference_probability,
    segment_returns,
)
from rlrun.training.optim import FlatOptimizer


@torch.no_grad()
def member_returns(reward_model: RewardEnsemble, obs: torch.Tensor, actions: torch.Tensor,
                   masks: torch.Tensor) -> torch.Tensor:
    """Each member's segment returns, shape [members, *masks.shape[:-1]]."""
    return segment_returns(reward_model(obs, actions), masks)


def train_reward_model(reward_model: RewardEnsemble, optimizer: FlatOptimizer, data: PreferenceDataset,
                       epochs: int, batch_size: int) -> dict[str, float]:
    """`epochs` passes of Bradley-Terry minibatch steps of `batch_size` over the training comparisons.

    Returns train/rm_loss, the mean loss of the members over the steps (none without training pairs).
    """
    train_idx = data.indices(held_out=False)
    losses = []
    for _ in range(epochs):
        permutation = train_idx[torch.randperm(len(train_idx), device=train_idx.device)]
        for start in range(0, len(permutation), batch_size):
            mb = permutation[start : start + batch_size]
            returns = segment_returns(reward_model(data.obs[mb], data.actions[mb]), data.masks[mb])
            member_losses = torch.stack([
                bradley_terry_loss(returns[e, :, 0], returns[e, :, 1], data.mu1[mb], data.weights[mb, e])
                for e in range(len(returns))
            ])
            loss = member_losses.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(member_losses.mean().detach())
    return {"train/rm_loss": float(torch.stack(losses).mean())} if losses else {}


@torch.no_grad()
def reward_model_metrics(reward_model: RewardEnsemble, data: PreferenceDataset) -> dict[str, float]:
    """Held-out accuracy on strict preferences and learned-vs-true return correlation."""
    val_idx = data.indices(held_out=True)
    if len(val_idx) == 0:
        return {}
    returns = member_returns(reward_model, data.obs[val_idx], data.actions[val_idx], data.masks[val_idx]).mean(0)
    metrics = {}
    if (data.mu1[val_idx] != 0.5).any():
        probabilities = preference_probability(returns[:, 0], returns[:, 1])
        metrics["train/rm_accuracy"] = float(preference_accuracy(probabilities, data.mu1[val_idx]))
    true_returns = data.true_returns[val_idx].reshape(-1)
    if len(true_returns) > 2 and true_returns.std() > 0:
        metrics["train/rm_true_return_corr"] = float(pearson_correlation(returns.reshape(-1), true_returns))
    return metrics
