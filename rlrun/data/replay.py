"""Uniform experience replay for off-policy algorithms (DQN, DDPG, TD3, SAC)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlrun.config import ConfigError
from rlrun.data.memory import check_fits
from rlrun.data.one_hot import OneHotIndices, index_dtype
from rlrun.envs.factory import OneHotBox, VecEnv

ArrayLike = np.ndarray | Tensor


class ReplayBatch(NamedTuple):
    """Sampled transitions, every tensor on the buffer's ``device``.

    ``dones`` is 1.0 only where the episode terminated: a truncated transition is
    bootstrapped from ``next_obs`` like any other, so the TD target is
    ``rewards + gamma * (1 - dones) * V(next_obs)``.
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    dones: Tensor
    terminations: Tensor
    truncations: Tensor


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``torch.where`` with a per-sample ``mask`` broadcast over the trailing dims of ``a``."""
    return torch.where(mask.view(-1, *[1] * (a.dim() - 1)), a, b)


_ADDED_COLUMNS = ("obs", "actions", "rewards", "terminations", "truncations", "next_obs")
_OBS_STATE = ("obs", "next_obs", "final_obs", "last_next_obs")
"""Entries of a state dict that hold observations."""


def _host_array(value: ArrayLike) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def _num_rows(capacity: int, num_envs: int) -> int:
    """Rows of ``num_envs`` transitions a buffer of ``capacity`` transitions holds."""
    if not 0 < num_envs <= capacity:
        raise ValueError(f"need 0 < num_envs <= capacity, got {num_envs} and {capacity}")
    return capacity // num_envs


_Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]


def _stored_obs(
    obs_shape: tuple[int, ...], obs_dtype: torch.dtype, one_hot: tuple[int, ...] | None
) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape and dtype of an observation as stored: one index per segment with ``one_hot``."""
    if one_hot is None:
        return tuple(obs_shape), obs_dtype
    if tuple(obs_shape) != (sum(one_hot),):
        raise ValueError(f"one_hot sizes {one_hot} do not add up to observations of {obs_shape}")
    return (len(one_hot),), index_dtype(max(one_hot))


def _layout(
    num_rows: int,
    obs_shape: tuple[int, ...],
    action_shape: tuple[int, ...],
    num_envs: int,
    obs_dtype: torch.dtype,
    action_dtype: torch.dtype,
    optimize_memory: bool,
    frame_stack: bool,
    one_hot: tuple[int, ...] | None,
) -> tuple[_Layout, _Layout]:
    """Shapes and dtypes of a buffer's per-transition columns and of its other arrays."""
    obs_shape, obs_dtype = _stored_obs(obs_shape, obs_dtype, one_hot)
    grid = (num_rows, num_envs)
    rows: _Layout = {
        "actions": ((*grid, *action_shape), action_dtype),
        "rewards": (grid, torch.float32),
        "terminations": (grid, torch.bool),
        "truncations": (grid, torch.bool),
    }
    others: _Layout = {}
    if frame_stack:
        stack, frame = obs_shape[0], tuple(obs_shape[1:])
        # Earlier frames of the same episode in the stack (0 to stack - 1).
        rows["prior_frames"] = (grid, torch.uint8)
        others["frames"] = ((num_rows + stack, num_envs, *frame), obs_dtype)
        others["final_obs"] = ((num_envs, *frame), obs_dtype)
        others["host_next_obs"] = ((num_envs, *obs_shape), obs_dtype)
    else:
        rows["obs"] = ((*grid, *obs_shape), obs_dtype)
        if optimize_memory:
            others["last_next_obs"] = ((num_envs, *obs_shape), obs_dtype)
            others["final_obs"] = ((num_envs, *obs_shape), obs_dtype)
        else:
            rows["next_obs"] = ((*grid, *obs_shape), obs_dtype)
    if optimize_memory or frame_stack:
        # Sequence number of the row's final observation in the side store, -1 if none.
        rows["final_seq"] = (grid, torch.int64)
    return rows, others


def _all_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per environment (leading axis): whether ``a`` and ``b`` are equal everywhere."""
    return np.all(a == b, axis=tuple(range(1, a.ndim)))


class ReplayBuffer:
    """Circular buffer of transitions collected from ``num_envs`` parallel environments.

    Storage is ``capacity // num_envs`` rows, one per ``add``, of ``num_envs`` transitions
    each, so ``capacity`` is rounded down to a multiple of ``num_envs``. Tensors live on
    ``storage_device`` (CPU unless given) and samples are moved to ``device``.

    With ``optimize_memory`` next observations are not stored: the next observation of
    row ``t`` is the observation of row ``t + 1``. Where the episode ended (terminated or
    truncated) at row ``t`` that is the reset observation, so the true final observation
    is kept in a side store holding only the ended transitions still in the buffer, and
    the newest row's next observations, whose successor is not written yet, are kept in a
    one-row tensor. Callers must then pass a ``next_obs`` equal to the following ``obs``
    for the environments that did not end.

    ``frame_stack`` (which implies ``optimize_memory``) stores each frame of stacked
    observations once: observations of shape ``(k, *frame)`` built by gymnasium's
    ``FrameStackObservation`` with its default reset padding, so that within an episode
    ``obs[:-1]`` is the previous ``obs[1:]`` and a fresh episode's stack is its first frame
    repeated ``k`` times. A row keeps the newest frame ``obs[:, -1]`` in a ring of frames and,
    per transition, how many earlier frames of the stack belong to the same episode; the stack
    is rebuilt from the same env's previous rows, repeating the episode's first frame before
    its start. The ring has ``k`` rows more than the buffer: ``k - 1`` for the history of the
    oldest row and one for the newest row's next frame. A next observation is the observation
    shifted by one frame, the new frame being the following row's, or for an ended episode
    its final frame, kept in the side store. ``add`` raises ``ValueError`` unless ``next_obs``
    is ``obs`` shifted by one frame and each ``obs`` continues the env's previous ``next_obs``
    (where that episode did not end) or is a fresh stack; a fresh stack after an episode that
    did not end (envs reset on resume) moves the previous next frame to the side store.
    Samples equal a plain buffer's element for element.

    ``one_hot`` (not with ``frame_stack``) gives the sizes of the one-hot segments that make up
    each observation of shape ``(sum(one_hot),)``: observations are stored as one index per
    segment, in the smallest integer dtype that holds them, and expanded to one-hot vectors of
    ``obs_dtype`` on ``device`` when sampled, equal to a plain buffer's. ``add`` raises
    ``ValueError`` unless the observations are one-hot in every segment.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        storage_device: torch.device | str | None = None,
        optimize_memory: bool = False,
        frame_stack: bool = False,
        one_hot: tuple[int, ...] | None = None,
    ) -> None:
        if frame_stack and not (obs_shape and obs_shape[0] <= 256):
            raise ValueError(f"frame_stack needs a leading stack axis of 1 to 256, got {obs_shape}")
        if frame_stack and one_hot is not None:
            raise ValueError("frame_stack and one_hot cannot be combined")
        self.num_envs = num_envs
        self.num_rows = _num_rows(capacity, num_envs)
        self.capacity = self.num_rows * num_envs
        self.device = torch.device(device)
        self.storage_device = torch.device(storage_device or "cpu")
        self.optimize_memory = optimize_memory or frame_stack
        self.frame_stack = frame_stack
        on_cpu = self.storage_device.type == "cpu"
        self._pos = 0
        self._full = False

        def empty(spec: tuple[tuple[int, ...], torch.dtype]) -> Tensor:
            return torch.empty(spec[0], dtype=spec[1], device=self.storage_device)

        self._one_hot = None if one_hot is None else OneHotIndices(one_hot, obs_dtype, self.device)
        rows, others = _layout(self.num_rows, obs_shape, action_shape, num_envs, obs_dtype,
                               action_dtype, optimize_memory, frame_stack, one_hot)
        check_fits(
            self.required_bytes(capacity, obs_shape, action_shape, num_envs, obs_dtype, action_dtype,
                                optimize_memory, frame_stack, one_hot),
            f"a replay buffer of {capacity:,} transitions of {tuple(obs_shape)} "
            f"{'one-hot observations stored as indices' if one_hot else 'observations'}",
            "algo.buffer_size", capacity, self.storage_device,
        )
        self._rows = {name: empty(spec) for name, spec in rows.items()}
        if self.optimize_memory:
            self._rows["final_seq"].fill_(-1)
            self._final_obs = empty(others["final_obs"])  # grows on demand
            self._final_head = 0  # sequence number of the oldest stored final observation
            self._final_next = 0  # sequence number of the next one
        if frame_stack:
            self._frames = empty(others["frames"])
            self._frames_view = self._frames.numpy() if on_cpu else self._frames
            self._frame_pos = 0  # ring row of the newest row's next frame, the next obs[:, -1]
            self._frames_written = 0  # ring rows written so far (all once it wrapped)
            # Rows back from an observation's newest frame to each frame of its stack, then -1:
            # the next observation's newest frame, in the following row.
            self._lookback = torch.arange(obs_shape[0] - 1, -2, -1, device=self.storage_device)
            # The newest row's next observations, prior-frame counts and ends, to check `add`.
            shape, dtype = others["host_next_obs"]
            self._host_next_obs = torch.empty(shape, dtype=dtype).numpy()
            self._host_prior = np.zeros(num_envs, np.int64)
            self._host_ended = np.zeros(num_envs, bool)
        elif optimize_memory:
            self._last_next_obs = empty(others["last_next_obs"])
        self._columns: dict[str, np.ndarray | Tensor] = (
            {name: t.numpy() for name, t in self._rows.items()} if on_cpu else self._rows
        )
        """Where `add` writes: numpy views of CPU storage (a row write costs less than a copy)."""
        self._sampled = {
            name: t.flatten(0, 1) for name, t in self._rows.items() if name in ReplayBatch._fields
        }
        """Where `sample` reads: one transition per row, indexed by `row * num_envs + env`."""

    @property
    def size(self) -> int:
        """Number of stored transitions."""
        return (self.num_rows if self._full else self._pos) * self.num_envs

    @property
    def full(self) -> bool:
        """Whether the buffer has wrapped around, so each ``add`` overwrites the oldest row."""
        return self._full

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's tensors: ``required_bytes`` plus the side store's growth.

        The side store starts with ``num_envs`` slots and grows to at most twice the largest
        number of ended transitions held at once. ``optimize_memory`` saves
        ``(capacity - num_envs - slots) * obs_bytes`` bytes for 8 extra bytes per transition,
        where ``obs_bytes`` is the size of one observation: for 4x84x84 uint8 frames nearly
        half. ``frame_stack`` holds ``capacity + k * num_envs`` frames, ``slots`` final frames
        and 9 extra bytes per transition: for 4x84x84 uint8 frames about a quarter.
        """
        tensors = list(self._rows.values())
        if self.optimize_memory:
            tensors.append(self._final_obs)
        if self.frame_stack:
            tensors += [self._frames, self._host_next_obs]
        elif self.optimize_memory:
            tensors.append(self._last_next_obs)
        return sum(t.nbytes for t in tensors)

    @staticmethod
    def required_bytes(
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        optimize_memory: bool = False,
        frame_stack: bool = False,
        one_hot: tuple[int, ...] | None = None,
    ) -> int:
        """``nbytes`` of a new buffer built with these arguments, computed without allocating it."""
        rows, others = _layout(_num_rows(capacity, num_envs), obs_shape, action_shape, num_envs,
                               obs_dtype, action_dtype, optimize_memory, frame_stack, one_hot)
        specs = [*rows.values(), *others.values()]
        return sum(math.prod(shape) * dtype.itemsize for shape, dtype in specs)

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
        pos = self._pos
        to_storage = _host_array if self.storage_device.type == "cpu" else torch.as_tensor
        if self._one_hot is not None:  # checked before anything is written
            both = self._one_hot.encode(np.concatenate((_host_array(obs), _host_array(next_obs))))
            obs, next_obs = both[: self.num_envs], both[self.num_envs :]
        if self.frame_stack:  # checked before anything is written
            obs, next_obs = _host_array(obs), _host_array(next_obs)
            continued = self._check_frame_stacks(obs, next_obs)
        values = (obs, actions, rewards, terminations, truncations, next_obs)
        for name, value in zip(_ADDED_COLUMNS, values, strict=True):
            if name in self._columns:  # obs and next_obs are not all stored with optimize_memory
                self._columns[name][pos] = to_storage(value)
        if self.frame_stack:
            ended = _host_array(terminations).astype(bool) | _host_array(truncations).astype(bool)
            self._add_frames(obs, next_obs, ended, continued, to_storage)
        elif self.optimize_memory:
            next_obs = torch.as_tensor(next_obs, device=self.storage_device)
            self._last_next_obs.copy_(next_obs)
            ended = self._rows["terminations"][pos] | self._rows["truncations"][pos]
            self._store_final_obs(next_obs, ended)
        self._pos = (self._pos + 1) % self.num_rows
        self._full = self._full or self._pos == 0

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> ReplayBatch:
        """Draw ``batch_size`` transitions uniformly with replacement using ``generator``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        rng_device = generator.device if generator is not None else self.storage_device
        index = torch.randint(self.size, (batch_size,), generator=generator, device=rng_device)
        index = index.to(self.storage_device)
        data = {name: t.index_select(0, index) for name, t in self._sampled.items()}
        if self.frame_stack:
            data["obs"], data["next_obs"] = self._frame_stacks(index)
        elif self.optimize_memory:
            data["next_obs"] = self._next_obs(index // self.num_envs, index % self.num_envs)
        data["dones"] = data["terminations"].float()
        if self._one_hot is not None:  # expanded where the batch is used
            for name in ("obs", "next_obs"):
                data[name] = self._one_hot.decode(data[name].to(self.device))
        return ReplayBatch(**{name: t.to(self.device) for name, t in data.items()})

    def state_dict(self) -> dict[str, Tensor | int]:
        """Return the filled part of the buffer and its position as tensors and ints.

        As with ``nn.Module.state_dict`` the tensors may share memory with the buffer.
        """
        filled = self.size // self.num_envs
        # A partial slice is cloned, as saving a view writes its whole storage.
        state: dict[str, Tensor | int] = {
            name: t if filled == self.num_rows else t[:filled].clone()
            for name, t in self._rows.items()
        }
        state.update(capacity=self.capacity, pos=self._pos, full=int(self._full))
        if self.optimize_memory:
            state.update(
                final_obs=self._live_final_obs(),
                final_head=self._final_head,
                final_next=self._final_next,
            )
        if self.frame_stack:
            frames = self._frames
            if self._frames_written < len(frames):  # cloned, as a partial slice of rows is
                frames = frames[: self._frames_written].clone()
            state.update(frames=frames, frame_pos=self._frame_pos)
        elif self.optimize_memory:
            state.update(last_next_obs=self._last_next_obs)
        return state

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restore a ``state_dict`` taken from a buffer with the same configuration.

        The next ``add`` may start new episodes (environments are reset on resume): with
        ``optimize_memory`` the newest row's next observations are kept as final observations;
        with ``frame_stack`` it may also continue the episodes (environments replayed).
        """
        if state["capacity"] != self.capacity:
            raise ValueError(f"state has capacity {state['capacity']}, buffer {self.capacity}")
        if self._one_hot is not None:  # a state of one-hot vectors is stored as indices
            state = {
                name: torch.from_numpy(self._one_hot.encode(value.cpu().numpy()))
                if name in _OBS_STATE and value.is_floating_point() else value
                for name, value in state.items()
            }
        self._pos, self._full = int(state["pos"]), bool(state["full"])
        if self.optimize_memory:
            self._rows["final_seq"].fill_(-1)
            self._final_head, self._final_next = int(state["final_head"]), int(state["final_next"])
            final_obs = state["final_obs"]
            self._place_final_obs(final_obs, max(len(final_obs), self.num_envs))
        for name, t in self._rows.items():
            t[: len(state[name])].copy_(state[name])
        if self.frame_stack:
            frames = state["frames"]
            self._frames[: len(frames)].copy_(frames)
            self._frames_written, self._frame_pos = len(frames), int(state["frame_pos"])
            self._load_host_state()
        elif self.optimize_memory:
            self._last_next_obs.copy_(state["last_next_obs"])
            if self.size:
                self._seal_newest_row()

    def _next_obs(self, rows: Tensor, envs: Tensor) -> Tensor:
        """Rebuild next observations in ``optimize_memory`` mode without host syncs."""
        following = self._rows["obs"][(rows + 1) % self.num_rows, envs]
        seq = self._rows["final_seq"][rows, envs]
        final = self._final_obs[seq.clamp(min=0) % len(self._final_obs)]
        next_obs = _where(seq >= 0, final, following)
        newest = rows == (self._pos - 1) % self.num_rows
        return _where(newest, self._last_next_obs[envs], next_obs)

    def _check_frame_stacks(self, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Raise ``ValueError`` unless ``frame_stack`` can store the step; return continued envs."""
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
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        ended: np.ndarray,
        continued: np.ndarray,
        to_storage: Callable[[np.ndarray], np.ndarray | Tensor],
    ) -> None:
        """Write the frames, prior-frame counts and final frames of a checked step."""
        final_seq = self._columns["final_seq"]
        sealed = ~continued & ~self._host_ended  # new episodes where the previous did not end
        if self.size and sealed.any():
            previous = final_seq[(self._pos - 1) % self.num_rows]
            self._keep_final_frames(previous, sealed, self._host_next_obs[sealed, -1])
        row = final_seq[self._pos]
        # Rows are overwritten in the order they were written: their final frames are the oldest.
        self._final_head += int((row >= 0).sum())
        row[:] = -1
        if ended.any():
            self._keep_final_frames(row, ended, next_obs[ended, -1])
        prior = np.where(continued, np.minimum(self._host_prior + 1, obs.shape[1] - 1), 0)
        ring = len(self._frames)
        self._frames_view[self._frame_pos] = to_storage(obs[:, -1])
        self._frame_pos = (self._frame_pos + 1) % ring
        self._frames_view[self._frame_pos] = to_storage(next_obs[:, -1])
        self._frames_written = max(self._frames_written, self._frame_pos + 1)
        self._columns["prior_frames"][self._pos] = to_storage(prior.astype(np.uint8))
        self._host_next_obs[:] = next_obs
        self._host_prior, self._host_ended = prior, ended

    def _keep_final_frames(
        self, final_seq: np.ndarray | Tensor, envs: np.ndarray, frames: np.ndarray
    ) -> None:
        """Append ``frames`` to the side store and set their numbers in a row of ``final_seq``."""
        new_seq = self._append_final_obs(torch.as_tensor(frames, device=self.storage_device))
        if isinstance(final_seq, Tensor):
            final_seq[torch.as_tensor(envs, device=final_seq.device)] = new_seq
        else:
            final_seq[envs] = new_seq.numpy()

    def _frame_stacks(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Rebuild observations and next observations in ``frame_stack`` mode without host syncs."""
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
        final = self._final_obs.index_select(0, seq.clamp(min=0) % len(self._final_obs))
        pick = torch.arange(len(index), device=index.device) + len(index) * (seq >= 0)
        gathered[:, -1] = torch.cat([gathered[:, -1], final]).index_select(0, pick)  # ended: final
        return gathered[:, :-1].contiguous(), gathered[:, 1:].contiguous()

    def _load_host_state(self) -> None:
        """Recompute the newest row's next observations, counts and ends after a load."""
        if not self.size:  # `add` then checks for fresh stacks only
            return
        row = (self._pos - 1) % self.num_rows
        index = row * self.num_envs + torch.arange(self.num_envs, device=self.storage_device)
        self._host_next_obs[:] = self._frame_stacks(index)[1].cpu().numpy()
        self._host_prior = self._rows["prior_frames"][row].cpu().numpy().astype(np.int64)
        self._host_ended = self._rows["final_seq"][row].cpu().numpy() >= 0

    def _store_final_obs(self, next_obs: Tensor, ended: Tensor) -> None:
        """Keep the final observations of the current row's ended episodes in the side store."""
        seq = self._rows["final_seq"][self._pos]
        # Rows are overwritten in the order they were written, so the final observations
        # of the row being overwritten are the oldest in the side store.
        self._final_head += int((seq >= 0).sum())
        new_seq = self._append_final_obs(next_obs[ended])
        seq.fill_(-1)
        seq[ended] = new_seq

    def _seal_newest_row(self) -> None:
        """Move the newest row's pending next observations into the side store, as if ended."""
        seq = self._rows["final_seq"][(self._pos - 1) % self.num_rows]
        pending = seq < 0
        seq[pending] = self._append_final_obs(self._last_next_obs[pending])

    def _append_final_obs(self, final_obs: Tensor) -> Tensor:
        """Add final observations to the side store, growing it if needed; returns their numbers."""
        live = self._final_next - self._final_head + len(final_obs)
        if live > len(self._final_obs):
            slots = min(max(live, 2 * len(self._final_obs)), self.capacity)
            self._place_final_obs(self._live_final_obs(), slots)
        new_seq = torch.arange(
            self._final_next, self._final_next + len(final_obs), device=self.storage_device
        )
        self._final_obs[new_seq % len(self._final_obs)] = final_obs
        self._final_next += len(final_obs)
        return new_seq

    def _live_final_obs(self) -> Tensor:
        """Side-store contents from the oldest to the newest final observation."""
        seq = torch.arange(self._final_head, self._final_next, device=self.storage_device)
        return self._final_obs[seq % len(self._final_obs)]

    def _place_final_obs(self, final_obs: Tensor, slots: int) -> None:
        """Reallocate the side store with ``slots`` slots holding ``final_obs``, oldest first."""
        seq = torch.arange(
            self._final_head, self._final_head + len(final_obs), device=self.storage_device
        )
        store = self._final_obs
        self._final_obs = store.new_empty((slots, *store.shape[1:]))
        self._final_obs[seq % slots] = final_obs.to(store)


def make_replay(capacity: int, envs: VecEnv, device: torch.device) -> ReplayBuffer:
    """The replay buffer for these envs' spaces: integer actions for Discrete, float vectors for
    Box; uint8 observations stored once (`optimize_memory`), image stacks frame by frame,
    one-hot encodings of discrete observations as indices (replay never takes normalised ones)."""
    if capacity < envs.num_envs:
        raise ConfigError(
            f"algo.buffer_size={capacity} is smaller than env.num_envs={envs.num_envs}; raise it"
        )
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    frames = obs_space.dtype == np.uint8
    discrete = isinstance(action_space, gym.spaces.Discrete)
    return ReplayBuffer(
        capacity,
        obs_space.shape,
        () if discrete else action_space.shape,
        envs.num_envs,
        obs_dtype=torch.uint8 if frames else torch.float32,
        action_dtype=torch.int64 if discrete else torch.float32,
        device=device,
        optimize_memory=frames,
        frame_stack=frames and len(obs_space.shape) == 3,
        one_hot=obs_space.sizes if isinstance(obs_space, OneHotBox) else None,
    )
