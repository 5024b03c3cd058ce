"""Uniform experience replay for off-policy algorithms (DQN, DDPG, TD3, SAC): the plain storage,
the compact one that stores each observation once, and `make_replay`, which picks the storage
for an env's spaces (frame stacks: `rlrun.data.frame_replay`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlrun.config import ConfigError
from rlrun.data.frame_replay import FrameStackReplayBuffer
from rlrun.data.replay_base import (
    ArrayLike,
    Layout,
    ReplayBatch,
    ReplayStorage,
    stored_obs,
    where,
)
from rlrun.envs.factory import OneHotBox, VecEnv

__all__ = ["ArrayLike", "CompactReplayBuffer", "FrameStackReplayBuffer", "ReplayBatch",
           "ReplayBuffer", "ReplayStorage", "make_replay"]


class ReplayBuffer(ReplayStorage):
    """Replay that stores each transition's observation and next observation as given."""

    @staticmethod
    def layout(
        num_rows: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype,
        action_dtype: torch.dtype,
        one_hot: tuple[int, ...] | None,
    ) -> tuple[Layout, Layout]:
        rows, others = ReplayStorage.layout(num_rows, obs_shape, action_shape, num_envs,
                                            obs_dtype, action_dtype, one_hot)
        shape, dtype = stored_obs(obs_shape, obs_dtype, one_hot)
        obs = ((num_rows, num_envs, *shape), dtype)
        rows.update(obs=obs, next_obs=obs)
        return rows, others

    def add(
        self,
        obs: ArrayLike,
        next_obs: ArrayLike,
        actions: ArrayLike,
        rewards: ArrayLike,
        terminations: ArrayLike,
        truncations: ArrayLike,
    ) -> None:
        """Store one vector-env step; every argument has a leading ``num_envs`` dimension.

        For environments whose episode ended at this step ``next_obs`` must hold the true
        final observation, not the first observation after the automatic reset.
        """
        obs, next_obs = self._encoded(obs, next_obs)
        self._write(obs=obs, actions=actions, rewards=rewards, terminations=terminations,
                    truncations=truncations, next_obs=next_obs)
        self._advance()

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restore a ``state_dict`` taken from a buffer with the same configuration."""
        self._load_rows(self._checked_state(state))


class CompactReplayBuffer(ReplayStorage):
    """Replay that stores each observation once: next observations are not stored.

    The next observation of row ``t`` is the observation of row ``t + 1``. Where the episode
    ended (terminated or truncated) at row ``t`` that is the reset observation, so the true
    final observation is kept in a side store holding only the ended transitions still in the
    buffer, and the newest row's next observations, whose successor is not written yet, are
    kept in a one-row tensor. Callers must pass a ``next_obs`` equal to the following ``obs``
    for the environments that did not end. Samples equal a ``ReplayBuffer``'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._finals = self._final_observations()
        self._last_next_obs = self._empty(self._others["last_next_obs"])

    @staticmethod
    def layout(
        num_rows: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype,
        action_dtype: torch.dtype,
        one_hot: tuple[int, ...] | None,
    ) -> tuple[Layout, Layout]:
        rows, others = ReplayStorage.layout(num_rows, obs_shape, action_shape, num_envs,
                                            obs_dtype, action_dtype, one_hot)
        shape, dtype = stored_obs(obs_shape, obs_dtype, one_hot)
        rows["obs"] = ((num_rows, num_envs, *shape), dtype)
        # Sequence number of the row's final observation in the side store, -1 if none.
        rows["final_seq"] = ((num_rows, num_envs), torch.int64)
        others["last_next_obs"] = ((num_envs, *shape), dtype)
        others["final_obs"] = ((num_envs, *shape), dtype)
        return rows, others

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's tensors: ``required_bytes`` plus the side store's growth.

        The side store starts with ``num_envs`` slots and grows to at most twice the largest
        number of ended transitions held at once. Against a ``ReplayBuffer`` this saves
        ``(capacity - num_envs - slots) * obs_bytes`` bytes for 8 extra bytes per transition,
        where ``obs_bytes`` is the size of one observation: for 4x84x84 uint8 frames nearly half.
        """
        return super().nbytes + self._finals.store.nbytes + self._last_next_obs.nbytes

    def add(
        self,
        obs: ArrayLike,
        next_obs: ArrayLike,
        actions: ArrayLike,
        rewards: ArrayLike,
        terminations: ArrayLike,
        truncations: ArrayLike,
    ) -> None:
        """Store one vector-env step, as ``ReplayBuffer.add``."""
        obs, next_obs = self._encoded(obs, next_obs)
        self._write(obs=obs, actions=actions, rewards=rewards, terminations=terminations,
                    truncations=truncations)
        next_obs = torch.as_tensor(next_obs, device=self.storage_device)
        self._last_next_obs.copy_(next_obs)
        ended = self._rows["terminations"][self._pos] | self._rows["truncations"][self._pos]
        seq = self._rows["final_seq"][self._pos]
        # Rows are overwritten in the order they were written, so the final observations
        # of the row being overwritten are the oldest in the side store.
        self._finals.retire(int((seq >= 0).sum()))
        new_seq = self._finals.append(next_obs[ended])
        seq.fill_(-1)
        seq[ended] = new_seq
        self._advance()

    def _rebuild_observations(self, index: Tensor, batch: dict[str, Tensor]) -> None:
        """Next observations without host syncs: the following row's, the side store's or the
        newest row's pending ones."""
        rows, envs = index // self.num_envs, index % self.num_envs
        following = self._rows["obs"][(rows + 1) % self.num_rows, envs]
        seq = self._rows["final_seq"][rows, envs]
        store = self._finals.store
        next_obs = where(seq >= 0, store[seq.clamp(min=0) % len(store)], following)
        newest = rows == (self._pos - 1) % self.num_rows
        batch["next_obs"] = where(newest, self._last_next_obs[envs], next_obs)

    def state_dict(self) -> dict[str, Tensor | int]:
        state = super().state_dict()
        state.update(self._finals.state_dict(), last_next_obs=self._last_next_obs)
        return state

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restore a ``state_dict`` taken from a buffer with the same configuration.

        The next ``add`` may start new episodes (environments are reset on resume): the newest
        row's next observations are kept as final observations.
        """
        state = self._checked_state(state)
        self._rows["final_seq"].fill_(-1)
        self._finals.load_state_dict(state, self.num_envs)
        self._load_rows(state)
        self._last_next_obs.copy_(state["last_next_obs"])
        if self.size:  # seal the newest row: its pending next observations become final ones
            seq = self._rows["final_seq"][(self._pos - 1) % self.num_rows]
            pending = seq < 0
            seq[pending] = self._finals.append(self._last_next_obs[pending])


def make_replay(capacity: int, envs: VecEnv, device: torch.device) -> ReplayStorage:
    """The replay storage for these envs' spaces: integer actions for Discrete, float vectors
    for Box; uint8 observations stored once (`CompactReplayBuffer`), image stacks frame by frame
    (`FrameStackReplayBuffer`), one-hot encodings of discrete observations as indices (replay
    never takes normalised ones)."""
    if capacity < envs.num_envs:
        raise ConfigError(
            f"algo.buffer_size={capacity} is smaller than env.num_envs={envs.num_envs}; raise it"
        )
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    frames = obs_space.dtype == np.uint8
    discrete = isinstance(action_space, gym.spaces.Discrete)
    args = (capacity, obs_space.shape, () if discrete else action_space.shape, envs.num_envs)
    kwargs = {"obs_dtype": torch.uint8 if frames else torch.float32,
              "action_dtype": torch.int64 if discrete else torch.float32, "device": device}
    if frames and len(obs_space.shape) == 3:
        return FrameStackReplayBuffer(*args, **kwargs)
    storage = CompactReplayBuffer if frames else ReplayBuffer
    one_hot = obs_space.sizes if isinstance(obs_space, OneHotBox) else None
    return storage(*args, **kwargs, one_hot=one_hot)
