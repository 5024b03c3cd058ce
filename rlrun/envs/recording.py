"""Recording whole episodes of single envs as they run (rlrun-eval's `eval.dataset`).

`EpisodeRecorder` wraps one env and keeps its first `quota` finished episodes in the layout of
a Minari episode: T+1 observations (the reset's and each step's), T actions, rewards,
terminations and truncations, and the infos of the reset and of each step (T+1 rows). Only
the info keys that every one of those T+1 dicts holds with a value of the same shape and a
storable type (numbers, booleans, strings, numeric arrays, dicts of those) are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class RecordedEpisode:
    """One finished episode of one env (Minari's episode layout)."""

    observations: np.ndarray
    """s_0..s_T as the env returned them, [T+1, *obs_shape]."""
    actions: np.ndarray
    """a_0..a_{T-1} the env executed, [T, *action_shape]."""
    rewards: np.ndarray
    """r_0..r_{T-1}, [T] float64."""
    terminations: np.ndarray
    """Whether s_{t+1} is terminal, [T] bool."""
    truncations: np.ndarray
    """Whether the episode was cut (time limit) after a_t, [T] bool."""
    infos: dict[str, Any]
    """The storable info keys, each stacked over the reset and the T steps ([T+1, ...])."""
    seed: int | None
    """Seed of the reset that started the episode (None: an unseeded reset)."""


@dataclass
class _Running:
    seed: int | None
    observations: list[Any]
    infos: list[dict]
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)


class EpisodeRecorder(gym.Wrapper):
    """Keeps the first `quota` episodes this env finishes (see the module docstring)."""

    def __init__(self, env: gym.Env, quota: int) -> None:
        super().__init__(env)
        self.quota = quota
        self.episodes: list[RecordedEpisode] = []
        self._running: _Running | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._running = _Running(seed, [obs], [info]) if len(self.episodes) < self.quota else None
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        running = self._running
        if running is not None:
            running.observations.append(obs)
            running.infos.append(info)
            running.actions.append(action)
            running.rewards.append(float(reward))
            running.terminations.append(bool(terminated))
            running.truncations.append(bool(truncated))
            if terminated or truncated:
                self.episodes.append(_finished(running))
                self._running = None
        return obs, reward, terminated, truncated, info


def _finished(running: _Running) -> RecordedEpisode:
    return RecordedEpisode(
        observations=np.stack(running.observations),
        actions=np.stack([np.asarray(action) for action in running.actions]),
        rewards=np.array(running.rewards, np.float64),
        terminations=np.array(running.terminations, bool),
        truncations=np.array(running.truncations, bool),
        infos=storable_infos(running.infos),
        seed=running.seed,
    )


def storable_infos(infos: list[dict]) -> dict[str, Any]:
    """The keys every dict of `infos` holds with a storable value of one shape, stacked."""
    stacked: dict[str, Any] = {}
    for key in infos[0]:
        values = [info.get(key) for info in infos]
        if all(isinstance(value, dict) for value in values):
            nested = storable_infos(values)
            if nested:
                stacked[key] = nested
            continue
        if all(isinstance(value, str) for value in values):
            stacked[key] = values
            continue
        if any(value is None or isinstance(value, dict) for value in values):
            continue
        arrays = [np.asarray(value) for value in values]
        if all(a.dtype.kind in "biuf" and a.shape == arrays[0].shape for a in arrays):
            stacked[key] = np.stack(arrays)
    return stacked


class EpisodeRecording:
    """The recorders of a vector env's envs: env i keeps its first `quotas[i]` episodes."""

    def __init__(self, quotas: list[int]) -> None:
        self.quotas = quotas
        self.recorders: list[EpisodeRecorder | None] = [None] * len(quotas)

    def wrap(self, make: Callable[[], gym.Env], index: int) -> gym.Env:
        """Env `index` of the vector env, built by `make`, recorded."""
        recorder = EpisodeRecorder(make(), self.quotas[index])
        self.recorders[index] = recorder
        return recorder

    def env_spec(self) -> gym.envs.registration.EnvSpec | None:
        """The spec of the recorded env as Gymnasium makes it (its kwargs and time limit), without
        the wrappers rlrun adds, and an entry point registered as a class named by its import
        path (Gymnasium serialises only those); None before the envs are built, or for an
        unregistered env."""
        recorder = self.recorders[0]
        spec = None if recorder is None else recorder.env.spec
        if spec is None:
            return None
        entry_point = spec.entry_point
        if callable(entry_point):
            entry_point = f"{entry_point.__module__}:{entry_point.__qualname__}"
        return dataclasses.replace(spec, additional_wrappers=(), entry_point=entry_point)

    def episodes(self) -> list[RecordedEpisode]:
        """Every env's recorded episodes, env after env."""
        built = [recorder for recorder in self.recorders if recorder is not None]
        return [episode for recorder in built for episode in recorder.episodes]
