"""What the value-based algorithms share (DQN, SARSA; book ch. 2): the check that
actions are discrete, the Q-network policy, step schedules and the semi-gradient TD step."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import torch

from rlrun.config import ConfigError, TrainConfig
from rlrun.networks.q import QNetwork
from rlrun.ops.optim import FlatOptimizer
from rlrun.ops.td import td_loss


def require_discrete_actions(algo: str) -> Callable[..., None]:
    """A `check_spaces` that refuses every action space but Discrete, naming what to use instead."""

    def check_spaces(
        obs_space: gym.Space, action_space: gym.Space, env_id: str = "this env"
    ) -> None:
        if isinstance(action_space, gym.spaces.Discrete):
            return
        if isinstance(action_space, gym.spaces.Box):
            raise ConfigError(
                f"algo={algo} needs Discrete actions; {env_id} has continuous (Box) actions: "
                "use algo=sac, td3 or ddpg (or ppo)"
            )
        raise ConfigError(
            f"algo={algo} needs Discrete actions; {env_id} has "
            f"{type(action_space).__name__} actions: use algo=ppo"
        )

    return check_spaces


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> QNetwork:
    return QNetwork(cfg.network, obs_space, action_space)




def td_update(
    optimizer: FlatOptimizer,
    q_values: torch.Tensor,
    targets: torch.Tensor,
    loss_kind: str,
    max_grad_norm: float,
) -> dict[str, torch.Tensor]:
    """One semi-gradient step on the TD loss of Q(s, a) (`q_values`) towards fixed `targets`."""
    loss = td_loss(q_values, targets, loss_kind)
    optimizer.zero_grad()
    loss.backward()
    grad_norm = optimizer.clip_grad_norm(max_grad_norm)
    optimizer.step()
    return {"loss": loss.detach(), "q_values": q_values.detach().mean(), "grad_norm": grad_norm}
