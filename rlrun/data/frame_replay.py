"""Replay of stacked image frames that stores each frame once (DQN on Atari)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rlrun.data.replay_base import ArrayLike, Layout, ReplayStorage, host_array


def _all_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per environment (leading axis): whether ``a`` and ``b`` are equal everywhere."""
    return np.all(a == b, axis=tuple(range(1, a.ndim)))


class FrameStackReplayBuffer(ReplayStorage):
    """Replay of frame stacks that stores each frame once.

    Observations of shape ``(k, *frame)`` are built by gymnasium's ``FrameStackObservation``
    with its default reset padding, so that within an episode ``obs[:-1]`` is the previous
    ``obs[1:]`` and a fresh episode's stack is its first frame repeated ``k`` times. A row keeps
    the newest frame ``obs[:, -1]`` in a ring of frames and, per transition, how many earlier
    frames of the stack belong to the same episode; the stack is rebuilt from the same env's
    previous rows, repeating the episode's first frame before its start. The ring has ``k``
    rows more than the buffer: ``k - 1`` for the history of the oldest row and one for the
    newest row's next frame. A next observation is the observation shifted by one frame, the
    new frame being the following row's, or for an ended episode its final frame, kept in a
    side store of the ended transitions still in the buffer. ``add`` raises ``ValueError``
    unless ``next_obs`` is ``obs`` shifted by one frame and each ``obs`` continues the env's
    previous ``next_obs`` (where that episode did not end) or is a fresh stack; a fresh stack
    after an episode that did not end (envs reset on resume) moves the previous next frame to
    the side store. Samples equal a ``ReplayBuffer``'s element for element.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype = torch.uint8,
        action_dtype: torch.dtype = torch.int64,
        device: torch.device | str = "cpu",
        storage_device: torch.device | str | None = None,
    ) -> None:
        if not (obs_shape and obs_shape[0] <= 256):
            raise ValueError(f"frame stacks need a leading stack axis of 1 to 256, got {obs_shape}")
        super().__init__(capacity, obs_shape, action_shape, num_envs, obs_dtype, action_dtype,
                         device, storage_device)
        self._finals = self._final_observations()
        self._frames = self._empty(self._others["frames"])
        self._frames_view = self._frames.numpy() if self.storage_device.type == "cpu" else self._frames
        self._frame_pos = 0  # ring row of the newest row's next frame, the next obs[:, -1]
        self._frames_written = 0  # ring rows written so far (all once it wrapped)
        # Rows back from an observation's newest frame to each frame of its stack, then -1:
        # the next observation's newest frame, in the following row.
        self._lookback = torch.arange(obs_shape[0] - 1, -2, -1, device=self.storage_device)
        # The newest row's next observations, prior-frame counts and ends, to check `add`.
        shape, dtype = self._others["host_next_obs"]
        self._host_next_obs = torch.empty(shape, dtype=dtype).numpy()
        self._host_prior = np.zeros(num_envs, np.int64)
        self._host_ended = np.zeros(num_envs, bool)

    @staticmethod
    def layout(
        num_rows: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype,
        action_dtype: torch.dtype,
        one_hot: tuple[int, ...] | None = None,
    ) -> tuple[Layout, Layout]:
        if one_hot is not None:
            raise ValueError("frame stacks cannot be stored as one-hot indices")
        rows, others = ReplayStorage.layout(num_rows, obs_shape, action_shape, num_envs,
                                            obs_dtype, action_dtype, one_hot)
        grid = (num_rows, num_envs)
        stack, frame = obs_shape[0], tuple(obs_shape[1:])
        # Earlier frames of the same episode in the stack (0 to stack - 1).
        rows["prior_frames"] = (grid, torch.uint8)
        # Sequence number of the row's final frame in the side store, -1 if none.
        rows["final_seq"] = (grid, torch.int64)
        others["frames"] = ((num_rows + stack, num_envs, *frame), obs_dtype)
        others["final_obs"] = ((num_envs, *frame), obs_dtype)
        others["host_next_obs"] = ((num_envs, *obs_shape), obs_dtype)
        return rows, others

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's tensors: ``required_bytes`` plus the side store's growth.

        The buffer holds ``capacity + k * num_envs`` frames, a side store of ``slots`` final
        frames (``num_envs`` at first, at most twice the largest number of ended transitions
        held at once) and 9 extra bytes per transition: for 4x84x84 uint8 frames about a
        quarter of a ``ReplayBuffer``.
        """
        return (super().nbytes + self._finals.store.nbytes + self._frames.nbytes
                + self._host_next_obs.nbytes)

    def add(
        self,
        obs: ArrayLike,
        next_obs: ArrayLike,
        actions: ArrayLike,
        rewards: ArrayLike,
        terminations: ArrayLike,
        truncations: ArrayLike,
    ) -> None:
        """Store one vector-env step, as ``ReplayBuffer.add``; checked before anything is
        written."""
        obs, next_obs = host_array(obs), host_array(next_obs)
        continued = self._check_frame_stacks(obs, next_obs)
        self._write(actions=actions, rewards=rewards, terminations=terminations,
                    truncations=truncations)
        ended = host_array(terminations).astype(bool) | host_array(truncations).astype(bool)
        self._add_frames(obs, next_obs, ended, continued)
        self._advance()

    def _check_frame_stacks(self, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Raise ``ValueError`` unless the step can be stored; return the continued envs."""
        if not _all_equal(next_obs[:, :-1], obs[:, 1:]).all():
            raise ValueError(
                "frame_stack: next_obs must be obs shifted by one frame (next_obs[:, :-1] == "
                "obs[:, 1:]), as gymnasium's FrameStackObservation builds them"
            )
        continued = np.zeros(self.num_envs, bool)
        if self.size:
            continued = ~self._host_ended & _all_equal(obs, self._host_next_obs)
        starts = np.flatnonzero(~continued)
        fresh = _all_equal(obs[starts, 1:], obs[starts, :-1])
        if not fresh.all():
            raise ValueError(
                f"frame_stack: the observations of envs {starts[~fresh].tolist()} neither "
                "continue the previous next_obs of an episode that did not end nor repeat one "
                "frame (FrameStackObservation pads a fresh episode with its first frame)"
            )
        return continued

    def _add_frames(
        self, obs: np.ndarray, next_obs: np.ndarray, ended: np.ndarray, continued: np.ndarray
    ) -> None:
        """Write the frames, prior-frame counts and final frames of a checked step."""
        final_seq = self._columns["final_seq"]
        sealed = ~continued & ~self._host_ended  # new episodes where the previous did not end
        if self.size and sealed.any():
            previous = final_seq[(self._pos - 1) % self.num_rows]
            self._keep_final_frames(previous, sealed, self._host_next_obs[sealed, -1])
        row = final_seq[self._pos]
        # Rows are overwritten in the order they were written: their final frames are the oldest.
        self._finals.retire(int((row >= 0).sum()))
        row[:] = -1
        if ended.any():
            self._keep_final_frames(row, ended, next_obs[ended, -1])
        prior = np.where(continued, np.minimum(self._host_prior + 1, obs.shape[1] - 1), 0)
        ring = len(self._frames)
        self._frames_view[self._frame_pos] = self._to_storage(obs[:, -1])
        self._frame_pos = (self._frame_pos + 1) % ring
        self._frames_view[self._frame_pos] = self._to_storage(next_obs[:, -1])
        self._frames_written = max(self._frames_written, self._frame_pos + 1)
        self._columns["prior_frames"][self._pos] = self._to_storage(prior.astype(np.uint8))
        self._host_next_obs[:] = next_obs
        self._host_prior, self._host_ended = prior, ended

    def _keep_final_frames(
        self, final_seq: np.ndarray | Tensor, envs: np.ndarray, frames: np.ndarray
    ) -> None:
        """Append ``frames`` to the side store and set their numbers in a row of ``final_seq``."""
        new_seq = self._finals.append(torch.as_tensor(frames, device=self.storage_device))
        if isinstance(final_seq, Tensor):
            final_seq[torch.as_tensor(envs, device=final_seq.device)] = new_seq
        else:
            final_seq[envs] = new_seq.numpy()

    def _rebuild_observations(self, index: Tensor, batch: dict[str, Tensor]) -> None:
        batch["obs"], batch["next_obs"] = self._frame_stacks(index)

    def _frame_stacks(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Rebuild observations and next observations without host syncs."""
        rows, envs = index // self.num_envs, index % self.num_envs
        ring = len(self._frames)
        age = (self._pos - 1 - rows) % self.num_rows  # 0 for the newest row
        newest = (self._frame_pos - 1 - age) % ring  # ring row of each observation's last frame
        prior = self._rows["prior_frames"].flatten().index_select(0, index).long()
        # Before the episode's start the stack repeats its first frame, `prior` rows back.
        ring_rows = (newest[:, None] - torch.minimum(self._lookback, prior[:, None])) % ring
        frames = self._frames.flatten(0, 1)  # index_select: faster than indexing or torch.where
        gathered = frames.index_select(0, (ring_rows * self.num_envs + envs[:, None]).flatten())
        gathered = gathered.view(*ring_rows.shape, *frames.shape[1:])  # k + 1 frames each
        seq = self._rows["final_seq"].flatten().index_select(0, index)
        store = self._finals.store
        final = store.index_select(0, seq.clamp(min=0) % len(store))
        pick = torch.arange(len(index), device=index.device) + len(index) * (seq >= 0)
        gathered[:, -1] = torch.cat([gathered[:, -1], final]).index_select(0, pick)  # ended: final
        return gathered[:, :-1].contiguous(), gathered[:, 1:].contiguous()

    def state_dict(self) -> dict[str, Tensor | int]:
        state = super().state_dict()
        state.update(self._finals.state_dict())
        frames = self._frames
        if self._frames_written < len(frames):  # cloned, as a partial slice of rows is
            frames = frames[: self._frames_written].clone()
        state.update(frames=frames, frame_pos=self._frame_pos)
        return state

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restore a ``state_dict`` taken from a buffer with the same configuration.

        The next ``add`` may start new episodes (environments reset on resume) or continue them
        (environments replayed).
        """
        state = self._checked_state(state)
        self._rows["final_seq"].fill_(-1)
        self._finals.load_state_dict(state, self.num_envs)
        self._load_rows(state)
        frames = state["frames"]
        self._frames[: len(frames)].copy_(frames)
        self._frames_written, self._frame_pos = len(frames), int(state["frame_pos"])
        self._load_host_state()

    def _load_host_state(self) -> None:
        """Recompute the newest row's next observations, counts and ends after a load."""
        if not self.size:  # `add` then checks for fresh stacks only
            return
        row = (self._pos - 1) % self.num_rows
        index = row * self.num_envs + torch.arange(self.num_envs, device=self.storage_device)
        self._host_next_obs[:] = self._frame_stacks(index)[1].cpu().numpy()
        self._host_prior = self._rows["prior_frames"][row].cpu().numpy().astype(np.int64)
        self._host_ended = self._rows["final_seq"][row].cpu().numpy() >= 0
