"""Actor-critic network for on-policy algorithms (PPO, A2C, REINFORCE with baseline, TRPO)."""

from __future__ import annotations

import gymnasium as gym
import torch

from rlrun.config import NetworkConfig
from rlrun.networks.actor import Actor
from rlrun.networks.heads import make_policy_head, value_head
from rlrun.networks.torso import make_torso
from rlrun.ops.distributions import Distribution


class ActorCritic(Actor):
    """Policy π(a|s) (the `Actor`) and value V(s), with separate torsos unless `network.shared`.

    The parts are built, and their parameters ordered, as actor torso, critic torso, policy
    head, value head: the order of the random initialisation and of the flat optimizer state
    in checkpoints.
    """

    def __init__(self, cfg: NetworkConfig, obs_space: gym.Space, action_space: gym.Space) -> None:
        actor_torso, features = make_torso(cfg, obs_space)
        critic_torso = actor_torso if cfg.shared else make_torso(cfg, obs_space)[0]
        policy_head = make_policy_head(cfg, features, action_space)
        super().__init__(actor_torso, policy_head)
        del self.policy_head  # registered again after the critic torso, which comes first in the order
        self.critic_torso = critic_torso
        self.policy_head = policy_head
        self.shared = cfg.shared
        self.value_head = value_head(features, cfg.init == "orthogonal")

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.critic_torso(obs)).squeeze(-1)

    def dist_and_value(self, obs: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """Both outputs, running a shared torso once."""
        if self.shared:
            features = self.actor_torso(obs)
            return self.policy_head(features), self.value_head(features).squeeze(-1)
        return self.dist(obs), self.value(obs)
