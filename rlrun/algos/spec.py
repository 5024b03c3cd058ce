"""What an algorithm registers (`SPEC = AlgoSpec(...)` in its module, or in another package's
through the `rlrun.algorithms` entry points): its name, config, training loop and policy builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gymnasium as gym
    from torch import nn

    from rlrun.config import TrainConfig
    from rlrun.run.facade import Run, TrainResult


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    """Config name, `algo=<name>`."""
    config: type
    """Structured config dataclass (subclass of AlgoConfig)."""
    train: Callable[[TrainConfig, Run], TrainResult]
    """Training loop."""
    make_policy: Callable[[TrainConfig, gym.Space, gym.Space], nn.Module]
    """Builds the acting network (with `act(obs, deterministic)`) for evaluation and export."""
    policy_key: str
    """Name under which the acting network is tracked in checkpoints."""
    check_spaces: Callable[[gym.Space, gym.Space, str], None] | None = None
    """`check_spaces(obs_space, action_space, env_id)` raises ConfigError (one line: why, and what
    to use instead) for spaces it cannot handle."""
    check_task: Callable[[TrainConfig], None] | None = None
    """For algorithms that train on an in-process task instead of Gymnasium envs (env=lm): raises
    ConfigError for a config it cannot run; the CLI then builds no Gymnasium env to check spaces."""
    compiles: bool = False
    """Accepts `compile=true`: its minibatch forward pass and loss go through torch.compile."""
    replay: bool = False
    """Learns from a replay buffer, whose transitions outlive the normalisation statistics of the
    moment they were stored: `env.normalize_obs` and `env.normalize_reward` are refused."""
