"""The policy network π(a|s) of the on-policy, zeroth-order and imitation algorithms: a torso
(MLP, or the Nature CNN), a policy head on its features, and the action distribution it gives."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlrun.config import NetworkConfig
from rlrun.networks.heads import make_policy_head
from rlrun.networks.torso import make_torso
from rlrun.ops.distributions import Distribution


class Actor(nn.Module):
    """π(a|s) = policy_head(actor_torso(s)): a categorical or diagonal Gaussian distribution."""

    def __init__(self, actor_torso: nn.Module, policy_head: nn.Module) -> None:
        super().__init__()
        self.actor_torso = actor_torso
        self.policy_head = policy_head

    def dist(self, obs: torch.Tensor) -> Distribution:
        return self.policy_head(self.actor_torso(obs))

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for acting and evaluation: the mode, or a sample."""
        dist = self.dist(obs)
        return dist.mode() if deterministic else dist.sample()


def actor_parts(cfg: NetworkConfig, obs_space: gym.Space, action_space: gym.Space) -> tuple[nn.Module, nn.Module]:
    """The torso for `obs_space`, then the policy head for `action_space` on its features."""
    torso, features = make_torso(cfg, obs_space)
    return torso, make_policy_head(cfg, features, action_space)
