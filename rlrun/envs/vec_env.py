"""`VecEnv`: the vector env every algorithm steps (same-step autoreset, normalisation, episode
statistics) over one of the backends of `rlrun.envs.vector`, and the `Step` it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlrun.envs.final_info import FinalInfo
from rlrun.envs.normalize import ObsNormalizer, RewardNormalizer
from rlrun.envs.vector import EnvPoolVectorEnv, SerialVectorEnv, SubprocessVectorEnv


@dataclass
class Step:
    """One vector step. Observations are normalised when the env normalises them.

    `final_obs` equals `obs` except in rows whose episode ended this step, where it holds
    the real last observation of that episode (for bootstrapping through truncation), while
    `obs` holds the first observation of the next episode.
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    final_obs: np.ndarray
    episode_returns: np.ndarray
    """Raw (unnormalised) returns of the episodes that ended this step."""
    episode_lengths: np.ndarray
    """Lengths (env steps) of the episodes that ended this step."""
    episode_infos: dict[str, np.ndarray]
    """{info key: its value in the final info of each episode that ended this step, NaN where
    the info lacks a number}, for the keys of `logger.info_keys` that one of them reports."""


_NO_RETURNS = np.zeros(0, np.float64)
_NO_LENGTHS = np.zeros(0, np.int64)
_NO_INFOS: dict[str, np.ndarray] = {}  # shared by every step without ended episodes: never modified


class VecEnv:
    """Vector env (same-step autoreset) with vectorised normalisation and episode statistics."""

    def __init__(
        self,
        envs: SerialVectorEnv | SubprocessVectorEnv | EnvPoolVectorEnv,
        obs_normalizer: ObsNormalizer | None,
        reward_normalizer: RewardNormalizer | None,
        training: bool,
        final_info: FinalInfo | None = None,
    ) -> None:
        self.envs = envs
        self.final_info = final_info
        envs.info_keys = final_info.keys if final_info is not None else ()
        self.num_envs = envs.num_envs
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = envs.single_action_space
        self.action_space = envs.action_space
        """Batched action space (seeded by Run) for uniformly random actions."""
        self.obs_normalizer = obs_normalizer
        self.reward_normalizer = reward_normalizer
        self.training = training
        space = self.single_action_space
        self._action_bounds = (space.low, space.high) if isinstance(space, gym.spaces.Box) else None
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._obs = np.zeros(0)
        self._pending_restore: dict | None = None
        self.notify: Callable[[str], None] = print
        """Where one-line notices go (Run points it at its logger)."""

    def _process(self, obs: np.ndarray, update: bool) -> np.ndarray:
        """Normalise (updating the statistics if asked) or cast float64 to float32."""
        if self.obs_normalizer is not None:
            return self.obs_normalizer(obs, update=update)
        return obs.astype(np.float32) if obs.dtype == np.float64 else obs

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start fresh episodes seeded with seed, seed+1, ... — or, right after
        `load_state_dict`, rebuild the checkpointed episodes exactly where they were."""
        if self._pending_restore is not None:
            state, self._pending_restore = self._pending_restore, None
            if self._restore(state):
                return self._obs
        obs = self.envs.reset(seed=seed)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        if self.reward_normalizer is not None:
            self.reward_normalizer.returns[:] = 0.0
        self._obs = self._process(obs, update=self.training)
        return self._obs

    def _restore(self, state: dict) -> bool:
        if not isinstance(self.envs, SerialVectorEnv):
            self.notify("Resume: envs of env.vectorization=async or env.backend=envpool cannot be rebuilt; "
                        "continuing with fresh episodes")
            return False
        mismatched = self.envs.restore(state["episodes"])
        if mismatched:
            self.notify(f"Resume: the episodes of envs {mismatched} could not be rebuilt by replay (the "
                        "simulator is not replayable, or an episode outgrew the action log); continuing "
                        "with fresh episodes")
            return False
        self._returns[:] = state["returns"].numpy()
        self._lengths[:] = state["lengths"].numpy()
        if self.reward_normalizer is not None:
            self.reward_normalizer.returns[:] = state["discounted_returns"].numpy()
        self._obs = state["obs"].numpy()
        return True

    def step(self, actions: np.ndarray) -> Step:
        if self._action_bounds is not None:
            low, high = self._action_bounds
            actions = np.minimum(np.maximum(actions, low), high)
        obs, rewards, terminations, truncations, final_rows, final_infos = self.envs.step(actions)
        ended = terminations | truncations
        self._returns += rewards
        self._lengths += 1
        processed = self._process(obs, update=self.training)
        final_obs = processed
        if final_rows:
            episode_returns = self._returns[ended]
            episode_lengths = self._lengths[ended]
            self._returns[ended] = 0.0
            self._lengths[ended] = 0
            raw_final = obs.copy()
            for i, row in final_rows.items():
                raw_final[i] = row
            final_obs = self._process(raw_final, update=False)
            episode_infos = (self.final_info.values(final_infos, np.flatnonzero(ended))
                             if final_infos and self.final_info is not None else _NO_INFOS)
        else:
            episode_returns, episode_lengths, episode_infos = _NO_RETURNS, _NO_LENGTHS, _NO_INFOS
        if self.reward_normalizer is not None and self.training:
            rewards = self.reward_normalizer(rewards, ended)
        self._obs = processed
        return Step(processed, rewards.astype(np.float32), terminations, truncations, final_obs,
                    episode_returns, episode_lengths, episode_infos)

    def state_dict(self) -> dict:
        """Normaliser statistics and the running episodes (tensors and plain data only)."""
        import torch  # here: building an env to read its spaces (`rlrun --cfg job`) needs no torch

        state: dict = {
            "returns": torch.as_tensor(self._returns.copy()),
            "lengths": torch.as_tensor(self._lengths.copy()),
            "obs": torch.as_tensor(np.array(self._obs)),
        }
        if isinstance(self.envs, SerialVectorEnv):
            state["episodes"] = self.envs.state_dict()
        if self.obs_normalizer is not None:
            state["obs_rms"] = self.obs_normalizer.rms.state_dict()
        if self.reward_normalizer is not None:
            state["return_rms"] = self.reward_normalizer.rms.state_dict()
            state["discounted_returns"] = torch.as_tensor(self.reward_normalizer.returns.copy())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore normaliser statistics now, and the running episodes at the next `reset`."""
        if self.obs_normalizer is not None and "obs_rms" in state:
            self.obs_normalizer.rms.load_state_dict(state["obs_rms"])
        if self.reward_normalizer is not None and "return_rms" in state:
            self.reward_normalizer.rms.load_state_dict(state["return_rms"])
        if "episodes" in state or "obs" in state:
            self._pending_restore = state

    def close(self) -> None:
        self.envs.close()
