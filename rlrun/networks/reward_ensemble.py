"""The reward model of reward learning from preferences (book ch. 14.3): an ensemble of MLPs r̂(s, a)."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn
from torch.nn import functional as F

from rlrun.networks.mlp import flat_dim, mlp


def _width(space: gym.Space) -> int:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else flat_dim(space.shape)


def _features(x: torch.Tensor, space: gym.Space) -> torch.Tensor:
    """One-hot for Discrete spaces, float otherwise."""
    if isinstance(space, gym.spaces.Discrete):
        return F.one_hot(x.long(), int(space.n)).float()
    return x.float()


class RewardEnsemble(nn.Module):
    """`members` independent MLPs r̂_e(s, a) on concat(obs, action) (one-hot for Discrete spaces).

    Hidden layers of `hidden_sizes` with `activation` (the run's network.activation), a linear
    scalar output; members differ by their random initialisation and bootstrap weights.
    """

    def __init__(self, obs_space: gym.Space, action_space: gym.Space, members: int, hidden_sizes: list[int],
                 activation: str) -> None:
        super().__init__()
        self.obs_space, self.action_space = obs_space, action_space
        in_dim = _width(obs_space) + _width(action_space)
        self.members = nn.ModuleList(
            nn.Sequential(mlp(in_dim, list(hidden_sizes), activation), nn.Linear(hidden_sizes[-1], 1))
            for _ in range(members)
        )

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Rewards of every member for a batch [...] of (obs, action): shape [members, ...]."""
        x = torch.cat([_features(obs, self.obs_space), _features(actions, self.action_space)], -1)
        flat = x.reshape(-1, x.shape[-1])
        return torch.stack([member(flat).squeeze(-1) for member in self.members]).reshape(-1, *x.shape[:-1])
