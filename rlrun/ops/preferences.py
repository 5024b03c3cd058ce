"""Preference math of reward learning from comparisons (book ch. 14.3; Christiano et al. 2017).

Pure functions on tensors. A pair of trajectory segments (σ¹, σ²) (eq. 14.2) is compared
through their returns R^j = Σ_t r(s^j_t, a^j_t) (eq. 14.3); segments cut short by a
termination are padded with an absorbing state of reward 0 (`mask` 0 there). Labels are the
distribution μ of eq. 14.4 written as one number, μ(1) ∈ {0, 0.5, 1} (μ(2) = 1 - μ(1)).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def segment_returns(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """R = Σ_t mask_t r_t over the last axis (eq. 14.3; padded steps count 0)."""
    return (rewards * mask).sum(-1)


def preference_probability(returns1: torch.Tensor, returns2: torch.Tensor) -> torch.Tensor:
    """P(σ¹ ≻ σ²) = e^{R¹} / (e^{R¹} + e^{R²}) = sigmoid(R¹ - R²) (Bradley-Terry, eqs. 14.5-14.6)."""
    return torch.sigmoid(returns1 - returns2)


def bradley_terry_loss(
    returns1: torch.Tensor, returns2: torch.Tensor, mu1: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of eq. 14.7 over pairs: -[μ(1) log P(σ¹≻σ²) + μ(2) log P(σ²≻σ¹)].

    The book sums over the dataset; the mean keeps the scale independent of its size. With
    `weights` (e.g. bootstrap counts) it is the weighted mean Σ w ℓ / Σ w (0 if all are 0).
    Computed with log-sigmoids of the return difference, finite for any returns.
    """
    difference = returns1 - returns2
    losses = -(mu1 * F.logsigmoid(difference) + (1.0 - mu1) * F.logsigmoid(-difference))
    if weights is None:
        return losses.mean()
    return (weights * losses).sum() / weights.sum().clamp(min=1e-8)


def synthetic_preferences(
    true_returns1: torch.Tensor,
    true_returns2: torch.Tensor,
    kind: str,
    noise: float,
    tie_margin: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """μ(1) of a simulated annotator who judges segments by their true returns (eq. 14.4).

    Pairs whose true returns differ by at most `tie_margin` are ties (μ(1) = 0.5). Otherwise:
    - kind "flip": prefers the higher return, and flips that label with probability `noise`;
    - kind "boltzmann": Boltzmann-rational, prefers σ¹ with probability
      sigmoid((R¹ - R²) / noise), `noise` a temperature in return units (0: always the higher).
    """
    difference = true_returns1 - true_returns2
    better = (difference > 0).float()
    if noise > 0:
        uniform = torch.rand(difference.shape, generator=generator, device=difference.device)
        if kind == "flip":
            better = torch.where(uniform < noise, 1.0 - better, better)
        elif kind == "boltzmann":
            better = (uniform < torch.sigmoid(difference / noise)).float()
        else:
            raise ValueError(f"unknown annotator kind {kind!r}; use flip or boltzmann")
    return torch.where(difference.abs() <= tie_margin, torch.full_like(better, 0.5), better)


def ensemble_disagreement(member_returns1: torch.Tensor, member_returns2: torch.Tensor) -> torch.Tensor:
    """Variance over ensemble members (axis 0) of each member's P(σ¹ ≻ σ²), per pair.

    The uncertainty by which Christiano et al. (book ch. 14.3) pick the pairs to annotate.
    """
    return preference_probability(member_returns1, member_returns2).var(0, unbiased=False)


def preference_accuracy(probabilities: torch.Tensor, mu1: torch.Tensor) -> torch.Tensor:
    """Fraction of strict (non-tie) labels whose preferred segment has P > 0.5; NaN without any."""
    strict = mu1 != 0.5
    return ((probabilities[strict] > 0.5) == (mu1[strict] > 0.5)).float().mean()


def pearson_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of two 1-D tensors; NaN when either is constant."""
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.square().sum() * y.square().sum()).sqrt()
