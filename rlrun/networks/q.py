"""Action-value network Q_ψ(s, ·) for discrete actions (DQN, SARSA; book ch. 2.1, Fig. 2.1)."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from rlrun.config import ConfigError, NetworkConfig
from rlrun.networks.heads import VALUE_GAIN
from rlrun.networks.mlp import layer_init
from rlrun.networks.torso import make_torso
from rlrun.ops.td import epsilon_greedy

ACT_EPSILON = 0.05
"""ε of `QNetwork.act(obs, deterministic=False)`: the evaluation ε of Mnih et al. (2015)."""


class QNetwork(nn.Module):
    """A torso (MLP, or the Nature CNN with `network.name=cnn`) and one linear output per action."""

    def __init__(self, cfg: NetworkConfig, obs_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(f"a Q-network needs Discrete actions, got {action_space}")
        self.torso, features = make_torso(cfg, obs_space)
        self.head = layer_init(
            nn.Linear(features, int(action_space.n)), VALUE_GAIN, cfg.init == "orthogonal"
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q(s, a) for every action, shape [B, A]."""
        return self.head(self.torso(obs))

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Greedy actions argmax_a Q(s, a) (eq. 2.7); ε-greedy with ε = ACT_EPSILON otherwise.

        Training loops draw their exploration actions with `rlrun.ops.td.epsilon_greedy` and
        the scheduled ε; this method serves evaluation (`eval.deterministic`) and export.
        """
        return epsilon_greedy(self(obs), 0.0 if deterministic else ACT_EPSILON)
