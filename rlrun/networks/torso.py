"""Feature extractors chosen by the `network` config group."""

from __future__ import annotations

import gymnasium as gym
from torch import nn

from rlrun.config import ConfigError, NetworkConfig
from rlrun.networks.cnn import MIN_IMAGE_SIZE, NatureCNN
from rlrun.networks.mlp import flat_dim, mlp


def make_torso(cfg: NetworkConfig, obs_space: gym.Space) -> tuple[nn.Module, int]:
    """Build the torso for `obs_space`; returns (module, feature width)."""
    if not isinstance(obs_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise ConfigError(
            f"observation space {obs_space} is not supported; use an env with Box or Discrete observations"
        )
    if cfg.name in ("lm", "hf_lm"):
        raise ConfigError(
            f"network={cfg.name} is the language-model network of env=lm (algo=ppo_lm or grpo); use network=mlp or cnn"
        )
    orthogonal = cfg.init == "orthogonal"
    if cfg.name == "cnn":
        if len(obs_space.shape) != 3:
            raise ConfigError(
                f"network=cnn needs image observations (C, H, W), got shape {obs_space.shape}; use network=mlp"
            )
        if min(obs_space.shape[1:]) < MIN_IMAGE_SIZE:
            raise ConfigError(
                f"image observations {obs_space.shape} are smaller than the {MIN_IMAGE_SIZE}x"
                f"{MIN_IMAGE_SIZE} pixels the CNN needs: render larger frames with a wrapper in "
                "env.wrappers, or flatten them for the MLP (gymnasium.wrappers.FlattenObservation "
                "last in env.wrappers)"
            )
        return NatureCNN(obs_space.shape, cfg.hidden_sizes[-1], orthogonal), cfg.hidden_sizes[-1]
    if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3:
        raise ConfigError(f"image observations {obs_space.shape} need network=cnn")
    in_dim = obs_space.n if isinstance(obs_space, gym.spaces.Discrete) else flat_dim(obs_space.shape)
    body = mlp(in_dim, list(cfg.hidden_sizes), cfg.activation, orthogonal)
    if isinstance(obs_space, gym.spaces.Discrete):
        return nn.Sequential(_OneHot(obs_space.n), body), cfg.hidden_sizes[-1]
    return body, cfg.hidden_sizes[-1]


class _OneHot(nn.Module):
    """Discrete observations (integer states) as one-hot vectors."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, obs):
        return nn.functional.one_hot(obs.long().flatten(), self.n).float()
