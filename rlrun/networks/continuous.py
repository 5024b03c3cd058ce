"""Networks for off-policy continuous control (DDPG, TD3, SAC).

Actors work in actions scaled to [-1, 1] (a tanh output) and map them to the env's bounds
with `ActionScaler` only when acting (`act`); critics take concat(obs, action in [-1, 1]).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlrun.config import NetworkConfig
from rlrun.networks.heads import POLICY_GAIN, VALUE_GAIN
from rlrun.networks.mlp import flat_dim, layer_init, mlp
from rlrun.ops.distributions import TanhGaussian

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""Range of the squashed Gaussian's log-std (nats), as in CleanRL's SAC."""


class ActionScaler(nn.Module):
    """The affine map between [-1, 1] and a Box's [low, high], per action dimension."""

    def __init__(self, action_space: gym.spaces.Box) -> None:
        super().__init__()
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        scale, center = (high - low) / 2.0, (high + low) / 2.0
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32), persistent=False)

    def to_env(self, unit_actions: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> [low, high]."""
        return unit_actions * self.scale + self.center

    def to_unit(self, actions: torch.Tensor) -> torch.Tensor:
        """[low, high] -> [-1, 1]."""
        return (actions - self.center) / self.scale


def _head(in_dim: int, out_dim: int, gain: float, orthogonal: bool) -> nn.Linear:
    return layer_init(nn.Linear(in_dim, out_dim), gain, orthogonal)


class DeterministicActor(nn.Module):
    """μ(s) = tanh(MLP(s)) in [-1, 1] (Lillicrap et al. 2016)."""

    def __init__(self, cfg: NetworkConfig, obs_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        super().__init__()
        orthogonal = cfg.init == "orthogonal"
        self.torso = mlp(flat_dim(obs_space.shape), list(cfg.hidden_sizes), cfg.activation, orthogonal)
        self.head = _head(cfg.hidden_sizes[-1], action_space.shape[0], POLICY_GAIN, orthogonal)
        self.scaler = ActionScaler(action_space)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions in [-1, 1]."""
        return torch.tanh(self.head(self.torso(obs)))

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Env actions; the policy is deterministic, so `deterministic` changes nothing."""
        return self.scaler.to_env(self(obs))


class TanhGaussianActor(nn.Module):
    """π(a|s): tanh of a Gaussian with state-dependent mean and log-std (Haarnoja et al. 2018)."""

    def __init__(self, cfg: NetworkConfig, obs_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        super().__init__()
        orthogonal = cfg.init == "orthogonal"
        self.torso = mlp(flat_dim(obs_space.shape), list(cfg.hidden_sizes), cfg.activation, orthogonal)
        # One layer gives both the means and the (pre-squash) log-stds.
        self.head = _head(cfg.hidden_sizes[-1], 2 * action_space.shape[0], POLICY_GAIN, orthogonal)
        self.scaler = ActionScaler(action_space)

    def dist(self, obs: torch.Tensor) -> TanhGaussian:
        """Distribution of actions in [-1, 1]; log-std squashed smoothly into [LOG_STD_MIN, LOG_STD_MAX]."""
        mean, log_std = self.head(self.torso(obs)).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return TanhGaussian(mean, log_std)

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Env actions: tanh of the mean, or a sample."""
        dist = self.dist(obs)
        return self.scaler.to_env(dist.mode() if deterministic else dist.rsample()[0])


class QCritic(nn.Module):
    """Q(s, a): an MLP on concat(obs, action) with a scalar output."""

    def __init__(self, cfg: NetworkConfig, in_dim: int) -> None:
        super().__init__()
        orthogonal = cfg.init == "orthogonal"
        self.body = mlp(in_dim, list(cfg.hidden_sizes), cfg.activation, orthogonal)
        self.head = _head(cfg.hidden_sizes[-1], 1, VALUE_GAIN, orthogonal)

    def forward(self, obs_actions: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(obs_actions)).squeeze(-1)


class QEnsemble(nn.Module):
    """`num_critics` independent Q-functions (1 for DDPG, twins for TD3 and SAC)."""

    def __init__(
        self, cfg: NetworkConfig, obs_space: gym.spaces.Box, action_space: gym.spaces.Box, num_critics: int
    ) -> None:
        super().__init__()
        in_dim = flat_dim(obs_space.shape) + action_space.shape[0]
        self.critics = nn.ModuleList(QCritic(cfg, in_dim) for _ in range(num_critics))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values of every critic, shape (num_critics, batch)."""
        obs_actions = torch.cat([obs, actions], dim=-1)
        return torch.stack([critic(obs_actions) for critic in self.critics])

    def first(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values of the first critic only, shape (batch,)."""
        return self.critics[0](torch.cat([obs, actions], dim=-1))
