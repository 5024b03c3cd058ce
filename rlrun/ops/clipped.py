"""PPO's clipped losses (book ch. 8, Alg. 8.1): the clipped surrogate, the value loss clipped
around the old values, and their sum with the entropy bonus."""

from __future__ import annotations

from typing import Protocol

import torch

from rlrun.ops.entropy import with_entropy_bonus


class ClipCoefficients(Protocol):
    """The config fields the clipped losses read (PPOFamilyConfig and LMConfig have them)."""

    clip_coef: float
    clip_vloss: bool
    vf_coef: float
    ent_coef: float


def clipped_value_loss(
    new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, algo: ClipCoefficients
) -> torch.Tensor:
    """0.5 E[(V - R)^2], with V kept within clip_coef of the old values when `algo.clip_vloss`."""
    value_error = (new_values - returns).square()
    if algo.clip_vloss:
        clipped = old_values + (new_values - old_values).clamp(-algo.clip_coef, algo.clip_coef)
        value_error = torch.max(value_error, (clipped - returns).square())
    return 0.5 * value_error.mean()


def clipped_policy_loss(
    new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-L^CLIP = -E[min(ρA, clip(ρ, 1-ε, 1+ε)A)], with approx_kl and clip_frac of the ratios ρ."""
    log_ratio = new_logprobs - old_logprobs
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages)
    policy_loss = -surrogate.mean()
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clip_frac": ((ratio - 1).abs() > clip_coef).float().mean(),
        }
    return policy_loss, stats


def ppo_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    algo: ClipCoefficients,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -L^CLIP + c_v L^V - c_e H and its parts (advantages already normalised)."""
    policy_loss, stats = clipped_policy_loss(new_logprobs, old_logprobs, advantages, algo.clip_coef)
    value_loss = clipped_value_loss(new_values, old_values, returns, algo)
    entropy_mean = entropy.mean()
    loss = with_entropy_bonus(policy_loss + algo.vf_coef * value_loss, entropy_mean, algo.ent_coef)
    stats.update(value_loss=value_loss.detach(), entropy=entropy_mean.detach())
    return loss, stats
