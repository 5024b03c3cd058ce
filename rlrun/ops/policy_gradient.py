"""Primitives of the score-function (policy-gradient) losses: REINFORCE, A2C, off-policy AC.

Book eq. 3.29: ∇J = E[Σ_t ∇log π(a_t|s_t) Φ_t], estimated as the mean over the batch's steps
of ∇log π(a_t|s_t) Φ_t, where Φ_t is an advantage or a return (weighted as the caller wants,
e.g. by truncated importance weights for off-policy data, book ch. 4). The critic regresses
V(s_t) on a target (book eq. 3.31).
"""

from __future__ import annotations

import torch


def score_function_loss(logprobs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """-mean(log π(a_t|s_t) · Φ_t): its gradient is minus the policy-gradient estimate (eq. 3.29).

    Args:
        logprobs: log π(a_t|s_t) of the taken actions, with gradient, shape [B].
        advantages: Φ_t (already weighted and normalised as wanted, no gradient), shape [B].
    """
    return -(logprobs * advantages).mean()


def squared_error(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean((prediction - target)²): the critic's regression loss (eq. 3.31)."""
    return (predictions - targets).square().mean()
