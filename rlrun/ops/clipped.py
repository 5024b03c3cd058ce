"""The clipped primitives of PPO (book ch. 8, Alg. 8.1): the clipped surrogate of the policy
ratio, and the value loss clipped around the old values."""

from __future__ import annotations

import torch


def clipped_value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip: float | None,
) -> torch.Tensor:
    """0.5 E[(V - R)^2], with V kept within `clip` of the old values (None: not clipped)."""
    value_error = (new_values - returns).square()
    if clip is not None:
        clipped = old_values + (new_values - old_values).clamp(-clip, clip)
        value_error = torch.max(value_error, (clipped - returns).square())
    return 0.5 * value_error.mean()


def clipped_surrogate(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-L^CLIP = -E[min(ρA, clip(ρ, 1-ε, 1+ε)A)], with approx_kl and clip_frac of the ratios ρ."""
    log_ratio = new_logprobs - old_logprobs
    ratio = log_ratio.exp()
    clipped_ratio = ratio.clamp(1 - clip_coef, 1 + clip_coef)
    surrogate = torch.min(ratio * advantages, clipped_ratio * advantages)
    policy_loss = -surrogate.mean()
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clip_frac": ((ratio - 1).abs() > clip_coef).float().mean(),
        }
    return policy_loss, stats
