"""A lean synchronous vector env: N envs stepped in turn, reset in the same step they end.

Gymnasium's SyncVectorEnv merges every info dict on every step; rlrun needs none of them
except the final observation of an ended episode, which this returns directly.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from gymnasium.vector.utils import batch_space


class SerialVectorEnv:
    """Steps `len(env_fns)` envs one after the other in this process."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        shape, dtype = self.single_observation_space.shape, self.single_observation_space.dtype
        self._obs = np.zeros((self.num_envs, *shape), dtype)
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terminations = np.zeros(self.num_envs, bool)
        self._truncations = np.zeros(self.num_envs, bool)

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, env in enumerate(self.envs):
            self._obs[i] = env.reset(seed=None if seed is None else seed + i)[0]
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """Returns (obs, rewards, terminations, truncations, {env index: final obs of its ended episode})."""
        final_obs = {}
        for i, env in enumerate(self.envs):
            obs, self._rewards[i], self._terminations[i], self._truncations[i], _ = env.step(actions[i])
            if self._terminations[i] or self._truncations[i]:
                final_obs[i] = obs
                obs = env.reset()[0]
            self._obs[i] = obs
        return self._obs.copy(), self._rewards.copy(), self._terminations.copy(), self._truncations.copy(), final_obs

    def close(self) -> None:
        for env in self.envs:
            env.close()


class SubprocessVectorEnv:
    """Gymnasium's AsyncVectorEnv (one subprocess per env) behind SerialVectorEnv's interface."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        self.vector_env = AsyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
        self.num_envs = self.vector_env.num_envs
        self.single_observation_space = self.vector_env.single_observation_space
        self.single_action_space = self.vector_env.single_action_space
        self.action_space = self.vector_env.action_space

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.vector_env.reset(seed=seed)[0]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        obs, rewards, terminations, truncations, infos = self.vector_env.step(actions)
        ended = np.flatnonzero(terminations | truncations)
        return obs, rewards, terminations, truncations, {int(i): infos["final_obs"][i] for i in ended}

    def close(self) -> None:
        self.vector_env.close()
