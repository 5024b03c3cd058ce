"""What the value-based algorithms share (DQN, SARSA; book ch. 2): the check that
actions are discrete, the Q-network policy and the semi-gradient TD step (each algorithm's
module holds its own TD loss)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import torch

from rlrun.config import ConfigError, TrainConfig
from rlrun.networks.q import QNetwork
from rlrun.training.optim import FlatOptimizer


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


def td_step(
    optimizer: FlatOptimizer, loss: torch.Tensor, q_taken: torch.Tensor, max_grad_norm: float
) -> dict[str, torch.Tensor]:
    """One semi-gradient step on a TD `loss` of Q(s, a) (`q_taken`), gradients clipped to
    `max_grad_norm`; returns its `loss`, `q_values` (mean Q(s, a)) and `grad_norm`."""
    optimizer.zero_grad()
    loss.backward()
    grad_norm = optimizer.clip_grad_norm(max_grad_norm)
    optimizer.step()
    return {"loss": loss.detach(), "q_values": q_taken.detach().mean(), "grad_norm": grad_norm}
