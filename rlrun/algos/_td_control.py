"""What the value-based algorithms share (DQN, SARSA; book ch. 2): their config, the check that
actions are discrete, the Q-network policy, step schedules and the semi-gradient TD step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch

from rlrun.config import AlgoConfig, ConfigError, TrainConfig, check, check_discount
from rlrun.networks.q import QNetwork
from rlrun.ops.optim import FlatOptimizer
from rlrun.ops.td import LOSSES, linear_schedule, td_loss


@dataclass
class TDControlConfig(AlgoConfig):
    """Settings shared by the value-based algorithms (DQN, SARSA)."""

    gamma: float = 0.99
    """Discount factor per env step."""
    loss: str = "huber"
    """TD loss: huber (δ=1, Mnih et al. 2015) or mse (eq. 2.5)."""
    max_grad_norm: float = 10.0
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    eps_start: float = 1.0
    """Exploration probability ε at step 0 (probability)."""
    eps_end: float = 0.05
    """Exploration probability ε after the decay (probability)."""
    exploration_fraction: float = 0.1
    """Fraction of total_timesteps over which ε decays linearly from eps_start to eps_end."""
    log_every: int = 1000
    """Log training metrics every this many env steps."""

    def __post_init__(self) -> None:
        check_discount("algo.gamma", self.gamma)
        check(self.loss in LOSSES, f"algo.loss={self.loss!r} must be {' or '.join(LOSSES)}")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")
        for key in ("eps_start", "eps_end", "exploration_fraction"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, f"algo.{key}={value} must be in [0, 1]")
        check(self.log_every >= 1, f"algo.log_every={self.log_every} must be >= 1")

    def epsilon(self, step: int, total_timesteps: int) -> float:
        """ε at global env step `step`: a pure function of the step, so resuming needs no state."""
        return linear_schedule(
            self.eps_start, self.eps_end, self.exploration_fraction * total_timesteps, step
        )


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
