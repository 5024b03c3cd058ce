"""Output heads: categorical and Gaussian policies, state values."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlrun.config import ConfigError, NetworkConfig
from rlrun.networks.mlp import layer_init
from rlrun.ops.distributions import Categorical, DiagGaussian

POLICY_GAIN = 0.01
VALUE_GAIN = 1.0


class CategoricalHead(nn.Module):
    """Logits over n discrete actions."""

    def __init__(self, in_dim: int, n: int, orthogonal: bool) -> None:
        super().__init__()
        self.logits = layer_init(nn.Linear(in_dim, n), POLICY_GAIN, orthogonal)

    def forward(self, features: torch.Tensor) -> Categorical:
        return Categorical(self.logits(features))


class GaussianHead(nn.Module):
    """Diagonal Gaussian with a state-independent learned log-std (Schulman et al. 2015)."""

    def __init__(self, in_dim: int, action_dim: int, log_std_init: float, orthogonal: bool) -> None:
        super().__init__()
        self.mean = layer_init(nn.Linear(in_dim, action_dim), POLICY_GAIN, orthogonal)
        self.log_std = nn.Parameter(torch.full((1, action_dim), log_std_init))

    def forward(self, features: torch.Tensor) -> DiagGaussian:
        return DiagGaussian(self.mean(features), self.log_std)


def make_policy_head(cfg: NetworkConfig, in_dim: int, action_space: gym.Space) -> nn.Module:
    """Categorical head for Discrete actions, Gaussian for 1-D Box actions."""
    orthogonal = cfg.init == "orthogonal"
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(in_dim, int(action_space.n), orthogonal)
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianHead(in_dim, action_space.shape[0], cfg.log_std_init, orthogonal)
    raise ConfigError(
        f"action space {action_space} is not supported by this policy; use an env with "
        "Discrete or 1-D Box actions"
    )


def value_head(in_dim: int, orthogonal: bool) -> nn.Module:
    return layer_init(nn.Linear(in_dim, 1), VALUE_GAIN, orthogonal)
