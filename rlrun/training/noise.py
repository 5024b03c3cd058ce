"""Exploration noise for deterministic policies (DDPG, TD3), in actions scaled to [-1, 1].

Both draw from torch's global generator, whose state every checkpoint holds.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class GaussianNoise:
    """Independent N(0, std^2) noise per env step and action dimension (Fujimoto et al. 2018)."""

    def __init__(self, num_envs: int, action_dim: int, std: float, device: torch.device) -> None:
        self.shape = (num_envs, action_dim)
        self.std = std
        self.device = device

    def sample(self) -> torch.Tensor:
        return torch.randn(self.shape, device=self.device) * self.std

    def reset(self, ended: np.ndarray) -> None:
        """Nothing to reset: the noise has no memory."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise of Lillicrap et al. (2016), one process per env.

    Euler-Maruyama step x <- x - theta x dt + sigma sqrt(dt) N(0, 1), started at 0 and reset to
    0 where an episode ended; its stationary std is sigma / sqrt(2 theta) for small dt.
    """

    def __init__(
        self, num_envs: int, action_dim: int, theta: float, sigma: float, dt: float, device: torch.device
    ) -> None:
        self.state = torch.zeros(num_envs, action_dim, device=device)
        self.decay = 1.0 - theta * dt
        self.scale = sigma * math.sqrt(dt)

    def sample(self) -> torch.Tensor:
        self.state.mul_(self.decay).add_(torch.randn_like(self.state), alpha=self.scale)
        return self.state.clone()

    def reset(self, ended: np.ndarray) -> None:
        """Restart the processes of the envs whose episode ended (a boolean mask)."""
        self.state[torch.from_numpy(ended).to(self.state.device)] = 0.0

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.state.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.state.copy_(state["state"])


ExplorationNoise = GaussianNoise | OrnsteinUhlenbeckNoise
