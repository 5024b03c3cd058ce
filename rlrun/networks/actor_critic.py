"""Actor-critic network for on-policy algorithms (PPO, A2C, REINFORCE with baseline, TRPO)."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlrun.config import NetworkConfig
from rlrun.networks.heads import make_policy_head, value_head
from rlrun.networks.torso import make_torso
from rlrun.ops.distributions import Distribution


class ActorCritic(nn.Module):
    """Policy π(a|s) and value V(s), with separate torsos unless `network.shared`."""

    def __init__(self, cfg: NetworkConfig, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        self.actor_torso, features = make_torso(cfg, obs_space)
        self.critic_torso = self.actor_torso if cfg.shared else make_torso(cfg, obs_space)[0]
        self.shared = cfg.shared
        self.policy_head = make_policy_head(cfg, features, action_space)
        self.value_head = value_head(features, cfg.init == "orthogonal")

    def dist(self, obs: torch.Tensor) -> Distribution:
        return self.policy_head(self.actor_torso(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.critic_torso(obs)).squeeze(-1)

    def dist_and_value(self, obs: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """Both outputs, running a shared torso once."""
        if self.shared:
            features = self.actor_torso(obs)
            return self.policy_head(features), self.value_head(features).squeeze(-1)
        return self.dist(obs), self.value(obs)

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for acting and evaluation: the mode, or a sample."""
        dist = self.dist(obs)
        return dist.mode() if deterministic else dist.sample()
