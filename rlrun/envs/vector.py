"""A lean synchronous vector env: N envs stepped in turn, reset in the same step they end.

Gymnasium's SyncVectorEnv merges every info dict on every step; rlrun needs none of them
except the final observation of an ended episode and the values of `info_keys` in its final
info (`logger.info_keys`), which the vector envs here return directly.

Exact resume: simulator states (MuJoCo, classic control, Atari) are not portable data, so
`SerialVectorEnv` captures each env as the way to rebuild it: how its current episode was
reset (the explicit seed, or the env's RNG state just before an autoreset) and the actions
taken since. `restore` replays them and checks that the replayed observation equals the
saved one bit for bit; an env whose replay differs (a simulator with hidden randomness)
is reported and the run continues with fresh episodes. The action log of an episode is kept
for at most `MAX_LOGGED_ACTIONS` steps (memory stays flat on endless episodes); a longer
episode restarts fresh on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from gymnasium.vector.utils import batch_space

from rlrun.config import ConfigError

FinalInfos = dict[int, dict[str, Any]]
"""{env index: {key: value}}: the `info_keys` found in the final info of each episode that ended."""

MAX_LOGGED_ACTIONS = 100_000
"""Actions of one episode kept for exact resume (count); beyond them the episode is not replayed."""


def non_scalar_reward(reward: Any, env: str = "an env") -> ConfigError:
    """The refusal of a reward that is not one number (the vector of a multi-objective env)."""
    return ConfigError(
        f"{env} returns rewards of shape {np.shape(reward)}, not one number: rlrun needs scalar "
        "rewards; add a wrapper to env.wrappers that makes one (for MO-Gymnasium's envs, "
        "env.wrappers=[mo_gymnasium.wrappers.LinearReward])"
    )


def _env_rng_state(env: gym.Env) -> dict | None:
    """The state of the env's own RNG as plain data: a numpy Generator's (Gymnasium's) or a
    legacy RandomState's (dm_control's, through Shimmy); None for any other kind of RNG."""
    rng = env.unwrapped.np_random
    if isinstance(rng, np.random.Generator):
        return _plain(rng.bit_generator.state)
    if isinstance(rng, np.random.RandomState):
        return _plain(rng.get_state(legacy=False))
    return None


def _set_env_rng_state(env: gym.Env, state: dict) -> None:
    """Put back a state that `_env_rng_state` returned."""
    rng = env.unwrapped.np_random
    if isinstance(rng, np.random.RandomState):
        rng.set_state(state)
    else:
        rng.bit_generator.state = state


def _plain(state: dict) -> dict:
    """A bit generator's state with its arrays (MT19937's key) as lists: checkpoint data."""
    return {key: _plain(value) if isinstance(value, dict)
            else value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in state.items()}


class ActionLog:
    """The actions of one env's current episode, in a growing array of at most MAX_LOGGED_ACTIONS."""

    def __init__(self) -> None:
        self._actions: np.ndarray | None = None
        self.count = 0
        """Actions taken in the episode (count, including any beyond the log)."""

    def clear(self) -> None:
        self.count = 0

    def append(self, action: np.ndarray) -> None:
        if self.count < MAX_LOGGED_ACTIONS:
            action = np.asarray(action)
            if self._actions is None or self.count == len(self._actions):
                grown = np.empty((min(max(64, 2 * self.count), MAX_LOGGED_ACTIONS), *action.shape), action.dtype)
                if self._actions is not None:
                    grown[: self.count] = self._actions[: self.count]
                self._actions = grown
            self._actions[self.count] = action
        self.count += 1

    @property
    def complete(self) -> bool:
        """Whether every action of the episode is in the log."""
        return self.count <= MAX_LOGGED_ACTIONS

    def array(self) -> np.ndarray:
        return np.zeros(0) if self._actions is None else self._actions[: min(self.count, MAX_LOGGED_ACTIONS)].copy()


class SerialVectorEnv:
    """Steps `len(env_fns)` envs one after the other in this process.

    `replayable`: log each episode's start and actions for exact resume (training envs).
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]], replayable: bool = True) -> None:
        self.envs = [fn() for fn in env_fns]
        self.replayable = replayable
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        shape, dtype = self.single_observation_space.shape, self.single_observation_space.dtype
        self._obs = np.zeros((self.num_envs, *shape), dtype)
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terminations = np.zeros(self.num_envs, bool)
        self._truncations = np.zeros(self.num_envs, bool)
        self._episode_starts: list[dict] = [{} for _ in self.envs]
        self._episode_actions = [ActionLog() for _ in self.envs]
        self.info_keys: tuple[str, ...] = ()
        """Keys of an ended episode's final info that `step` returns."""

    def _reset_env(self, i: int, seed: int | None) -> np.ndarray:
        env = self.envs[i]
        if self.replayable:
            if seed is None:
                rng = _env_rng_state(env)
                self._episode_starts[i] = {"fresh": True} if rng is None else {"rng": rng}
            else:
                self._episode_starts[i] = {"seed": seed}
            self._episode_actions[i].clear()
        return env.reset(seed=seed)[0]

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i in range(self.num_envs):
            self._obs[i] = self._reset_env(i, None if seed is None else seed + i)
        return self._obs.copy()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray], FinalInfos]:
        """Returns (obs, rewards, terminations, truncations, {env index: final obs of its ended
        episode}, the `info_keys` of their final infos)."""
        final_obs = {}
        final_infos: FinalInfos = {}
        for i, env in enumerate(self.envs):
            if self.replayable:
                self._episode_actions[i].append(actions[i])
            obs, reward, self._terminations[i], self._truncations[i], info = env.step(actions[i])
            try:
                self._rewards[i] = reward
            except ValueError:
                if np.ndim(reward) == 0:
                    raise
                raise non_scalar_reward(reward) from None
            if self._terminations[i] or self._truncations[i]:
                final_obs[i] = obs
                if found := {key: info[key] for key in self.info_keys if key in info}:
                    final_infos[i] = found
                obs = self._reset_env(i, None)
            self._obs[i] = obs
        return (self._obs.copy(), self._rewards.copy(), self._terminations.copy(),
                self._truncations.copy(), final_obs, final_infos)

    def state_dict(self) -> dict:
        """How to rebuild every env's current episode: its reset and the actions since (an
        episode longer than the log is marked `{"fresh": True}`: it restarts on resume)."""
        import torch

        return {
            "episode_starts": [dict(start) if log.complete else {"fresh": True}
                               for start, log in zip(self._episode_starts, self._episode_actions, strict=True)],
            "episode_actions": [torch.as_tensor(log.array()) for log in self._episode_actions],
            "obs": torch.as_tensor(self._obs.copy()),
            "action_space_rng": self.action_space.np_random.bit_generator.state,
        }

    def restore(self, state: dict) -> list[int]:
        """Rebuild the envs of `state` by replay; returns the indices whose replay differed."""
        self.action_space.np_random.bit_generator.state = state["action_space_rng"]
        saved_obs = state["obs"].numpy()
        mismatched = []
        for i, env in enumerate(self.envs):
            start = state["episode_starts"][i]
            if start.get("fresh"):
                mismatched.append(i)
                continue
            if "rng" in start:
                _set_env_rng_state(env, start["rng"])
            self._obs[i] = self._reset_env(i, start.get("seed"))
            for action in state["episode_actions"][i].numpy():
                self._episode_actions[i].append(action)
                self._obs[i], _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            if not np.array_equal(self._obs[i], saved_obs[i]):
                mismatched.append(i)
        return mismatched

    def close(self) -> None:
        for env in self.envs:
            env.close()


class SubprocessVectorEnv:
    """Gymnasium's AsyncVectorEnv (one subprocess per env) behind SerialVectorEnv's interface.

    The final info of an ended episode comes through the pipe in Gymnasium's batched
    `final_info` (one array per key, with a `_<key>` mask of the envs that have it).
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        self.vector_env = AsyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
        self.num_envs = self.vector_env.num_envs
        self.single_observation_space = self.vector_env.single_observation_space
        self.single_action_space = self.vector_env.single_action_space
        self.action_space = self.vector_env.action_space
        self.info_keys: tuple[str, ...] = ()
        """Keys of an ended episode's final info that `step` returns."""

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.vector_env.reset(seed=seed)[0]

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray], FinalInfos]:
        obs, rewards, terminations, truncations, infos = self.vector_env.step(actions)
        ended = np.flatnonzero(terminations | truncations)
        final_obs = {int(i): infos["final_obs"][i] for i in ended}
        final_infos = batched_info_rows(infos["final_info"], ended, self.info_keys) if len(ended) else {}
        return obs, rewards, terminations, truncations, final_obs, final_infos

    def close(self) -> None:
        self.vector_env.close()


class EnvPoolVectorEnv:
    """EnvPool's C++ vector env (`env.backend=envpool`) behind SerialVectorEnv's interface.

    EnvPool resets an ended env on the *next* step; this resets it in the same step (a partial
    `reset`), so rlrun sees one autoreset convention everywhere. EnvPool seeds its envs when
    the pool is built (env i gets seed + i), so `reset(seed)` rebuilds the pool unless it is
    still unused and has that seed.
    """

    def __init__(self, envpool_make: Callable[..., Any], num_envs: int) -> None:
        """`envpool_make(seed=...)` builds the pool (`envpool.make` with everything else bound)."""
        self.info_keys: tuple[str, ...] = ()
        """Keys of an ended episode's final info that `step` returns (EnvPool's info holds only
        the entries its C++ env defines, e.g. `lives`, `elapsed_step`)."""
        self._make = envpool_make
        self._seed = 0
        self.pool = self._make(seed=0)
        self._fresh = True
        self.num_envs = num_envs
        self.single_observation_space = self.pool.observation_space
        self.single_action_space = self.pool.action_space
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Fresh episodes: from `seed` (a rebuilt pool), or, without one, from the envs' own RNGs."""
        if seed is not None and not (self._fresh and seed == self._seed):
            self.pool.close()
            self._seed = seed
            self.pool = self._make(seed=seed)
        self._fresh = False
        return self.pool.reset()[0]

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray], FinalInfos]:
        obs, rewards, terminations, truncations, infos = self.pool.step(actions)
        ended = np.flatnonzero(terminations | truncations)
        final_obs: dict[int, np.ndarray] = {}
        final_infos: FinalInfos = {}
        if len(ended):
            final_obs = {int(i): obs[i].copy() for i in ended}
            final_infos = batched_info_rows(infos, ended, self.info_keys)
            obs = obs.copy()
            obs[ended] = self.pool.reset(ended.astype(np.int32))[0]
        return obs, rewards.astype(np.float64), terminations, truncations, final_obs, final_infos

    def close(self) -> None:
        self.pool.close()


def batched_info_rows(infos: dict[str, Any], rows: np.ndarray, keys: tuple[str, ...]) -> FinalInfos:
    """The `keys` of `rows` in a batched info dict (one array per key, with Gymnasium's optional
    `_<key>` mask of the envs that have it)."""
    found: FinalInfos = {}
    for key in keys:
        if key not in infos:
            continue
        values, mask = infos[key], infos.get(f"_{key}")
        for i in rows:
            if mask is None or mask[i]:
                value = values[i] if isinstance(values, np.ndarray) else values  # a dict: nested info
                found.setdefault(int(i), {})[key] = value
    return found
