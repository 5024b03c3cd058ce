"""Lean action distributions for policies: no argument validation, no broadcasting magic.

`torch.distributions` objects cost tens of microseconds each to build and check; these
hold a tensor or two and compute log-probabilities and entropies directly.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class Categorical:
    """Categorical distribution over the last dimension of `logits`."""

    __slots__ = ("logits",)

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    @classmethod
    def of_log_probs(cls, log_probs: torch.Tensor) -> Categorical:
        """From logits that are log-probabilities already (no second logsumexp)."""
        dist = cls.__new__(cls)
        dist.logits = log_probs
        return dist

    def sample(self) -> torch.Tensor:
        """Draw actions with the Gumbel-max trick (uses torch's global generator)."""
        uniform = torch.rand_like(self.logits).clamp_(1e-20, 1.0)
        return (self.logits - (-uniform.log()).log()).argmax(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def sample_and_log_prob(self) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.sample()
        return actions, self.log_prob(actions)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        """KL(self || other) per sample."""
        return (self.logits.exp() * (self.logits - other.logits)).sum(-1)


class DiagGaussian:
    """Gaussian with diagonal covariance over the last dimension."""

    __slots__ = ("log_std", "mean")

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample_and_log_prob(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A sample and its log-density, reusing the standard normal draw z = (a - μ) / σ."""
        z = torch.randn_like(self.mean)
        actions = self.mean + self.log_std.exp() * z
        return actions, (-0.5 * z.square() - self.log_std).sum(-1) - _HALF_LOG_2PI * z.shape[-1]

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


def tanh_log_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(u)^2) per element, as 2(log 2 - u - softplus(-2u)): finite for any u."""
    return 2.0 * (_LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))


class TanhGaussian:
    """a = tanh(u) with u ~ N(mean, diag(exp(log_std))^2), over the last dimension.

    The squashed Gaussian of SAC (Haarnoja et al. 2018, App. C; book eq. 11.6): by the change
    of variables log π(a|s) = log N(u) - Σ_i log(1 - tanh(u_i)^2).
    """

    __slots__ = ("log_std", "mean")

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def rsample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample in (-1, 1) (differentiable in mean, log_std) and its log-density."""
        noise = torch.randn_like(self.mean)
        pre_tanh = self.mean + self.log_std.exp() * noise
        log_density = -0.5 * noise.square() - self.log_std - _HALF_LOG_2PI - tanh_log_det_jacobian(pre_tanh)
        return torch.tanh(pre_tanh), log_density.sum(-1)

    def mode(self) -> torch.Tensor:
        """tanh of the Gaussian mean (the deterministic action)."""
        return torch.tanh(self.mean)

    def log_prob(self, actions: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """Log-density of `actions` in (-1, 1); they are clamped `eps` inside the bounds first."""
        pre_tanh = torch.atanh(actions.clamp(-1.0 + eps, 1.0 - eps))
        z = (pre_tanh - self.mean) * (-self.log_std).exp()
        log_density = -0.5 * z.square() - self.log_std - _HALF_LOG_2PI - tanh_log_det_jacobian(pre_tanh)
        return log_density.sum(-1)


Distribution = Categorical | DiagGaussian


def rows(dist: Distribution, index: torch.Tensor | slice) -> Distribution:
    """The distributions of the batch rows `index`."""
    if isinstance(dist, Categorical):
        return Categorical.of_log_probs(dist.logits[index])
    return DiagGaussian(dist.mean[index], dist.log_std[index])


def frozen(dist: Distribution) -> Distribution:
    """A copy that owns its tensors, so later in-place parameter updates leave it unchanged.

    Needed to keep an old policy while the parameters move (trust-region steps, KL penalties):
    a DiagGaussian's `log_std` is otherwise a view of the state-independent log-std parameter.
    """
    if isinstance(dist, Categorical):
        return Categorical.of_log_probs(dist.logits.clone())
    return DiagGaussian(dist.mean.clone(), dist.log_std.clone())
