"""Observation spaces as networks take them: images channels first, everything else a float32
vector with discrete parts one-hot (`OneHotBox` where the vector is only one-hots)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlrun.config import ConfigError

FLAT_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
"""Observation spaces (and leaves of Tuple/Dict spaces) that rlrun flattens into float vectors."""


def is_image(space: gym.Space) -> bool:
    """uint8 Box observations with three axes: frames for the CNN (channels first or last)."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


class OneHotBox(gym.spaces.Box):
    """The float32 vector that `adapt_observations` makes of a discrete space: one one-hot segment
    of `sizes[i]` entries per discrete part, in Gymnasium's flattening order (a replay buffer
    stores one index per segment)."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__(0.0, 1.0, (sum(sizes),), np.float32)
        self.sizes = sizes


def one_hot_sizes(space: gym.Space) -> tuple[int, ...] | None:
    """Sizes of the one-hot segments that flattening makes of `space` when every part of it is
    Discrete or MultiDiscrete (Tuple/Dict of these too); None for any other space."""
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(int(n) for n in space.nvec.flatten())
    if isinstance(space, gym.spaces.Tuple):
        parts = space.spaces
    elif isinstance(space, gym.spaces.Dict):
        parts = tuple(space.spaces.values())
    else:
        return None
    sizes = [one_hot_sizes(part) for part in parts]
    return None if not sizes or None in sizes else sum(sizes, ())


def _flattenable(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Tuple):
        return all(_flattenable(part) for part in space.spaces)
    if isinstance(space, gym.spaces.Dict):
        return all(_flattenable(part) for part in space.spaces.values())
    return isinstance(space, FLAT_SPACES) and not is_image(space)


def adapt_observations(env: gym.Env) -> gym.Env:
    """`env` with observations a network takes: images channels first (uint8); everything else a
    float32 vector, with discrete parts one-hot (Discrete, MultiDiscrete, Tuple/Dict of these and Box);
    the space of a vector made only of one-hot parts is a `OneHotBox`."""
    space = env.observation_space
    if is_image(space):
        if space.shape[-1] in (1, 3, 4) and space.shape[0] not in (1, 3, 4):  # (H, W, C) -> (C, H, W)
            moved = gym.spaces.Box(np.moveaxis(space.low, -1, 0), np.moveaxis(space.high, -1, 0), dtype=np.uint8)
            env = gym.wrappers.TransformObservation(env, lambda obs: np.moveaxis(obs, -1, 0), moved)
        return env
    if not _flattenable(space):
        raise ConfigError(
            f"observation space {space} is not supported: rlrun trains on Box, Discrete, MultiDiscrete and "
            "MultiBinary observations, Tuple/Dict spaces of these, and uint8 images"
        )
    vector = isinstance(space, gym.spaces.Box) and len(space.shape) == 1
    if not vector:
        env = gym.wrappers.FlattenObservation(env)
    kept = (np.float32, np.float64) if vector else (np.float32,)  # VecEnv casts float64 states
    if env.observation_space.dtype not in kept:
        env = gym.wrappers.DtypeObservation(env, np.float32)
    sizes = one_hot_sizes(space)
    if sizes is not None:  # the same vectors, marked as one-hots
        env.observation_space = OneHotBox(sizes)
    return env
