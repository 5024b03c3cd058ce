"""Algorithm registry: `algo=<name>` -> its config schema, training loop and policy builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
from torch import nn

if TYPE_CHECKING:
    from rlrun.config import TrainConfig
    from rlrun.run import Run, TrainResult


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


def algorithms() -> dict[str, AlgoSpec]:
    """All registered algorithms by name."""
    from rlrun.algos import ppo

    return {spec.name: spec for spec in (ppo.SPEC,)}
