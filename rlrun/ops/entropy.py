"""The entropy bonus of the policy-gradient losses: -c_e E[H(π(·|s_t))] added to the loss."""

from __future__ import annotations

import torch


def with_entropy_bonus(loss: torch.Tensor, entropy_mean: torch.Tensor, ent_coef: float) -> torch.Tensor:
    """`loss` - c_e · mean entropy, or `loss` itself when c_e = 0.

    Without a bonus no entropy term is differentiated at all, so an entropy that is inf or nan
    (a collapsed Gaussian) cannot reach the gradient; for finite entropies both are the same.
    """
    if ent_coef > 0:
        return loss - ent_coef * entropy_mean
    return loss
