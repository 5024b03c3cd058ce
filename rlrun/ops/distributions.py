"""Lean action distributions for policies: no argument validation, no broadcasting magic.

`torch.distributions` objects cost tens of microseconds each to build and check; these
hold a tensor or two and compute log-probabilities and entropies directly.
"""

from __future__ import annotations

import math

import torch

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Categorical:
    """Categorical distribution over the last dimension of `logits`."""

    __slots__ = ("logits",)

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    def sample(self) -> torch.Tensor:
        """Draw actions with the Gumbel-max trick (uses torch's global generator)."""
        uniform = torch.rand_like(self.logits).clamp_(1e-20, 1.0)
        return (self.logits - (-uniform.log()).log()).argmax(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        """KL(self || other) per sample."""
        return (self.logits.exp() * (self.logits - other.logits)).sum(-1)


class DiagGaussian:
    """Gaussian with diagonal covariance over the last dimension."""

    __slots__ = ("mean", "log_std")

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) * (-self.log_std).exp()
        return (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 + _HALF_LOG_2PI).sum(-1)

    def kl(self, other: DiagGaussian) -> torch.Tensor:
        """KL(self || other) per sample."""
        var_ratio = (2.0 * (self.log_std - other.log_std)).exp()
        mean_term = ((self.mean - other.mean) * (-other.log_std).exp()).square()
        return 0.5 * (var_ratio + mean_term - 1.0 - 2.0 * (self.log_std - other.log_std)).sum(-1)


Distribution = Categorical | DiagGaussian
