"""Uniform experience replay for off-policy algorithms (DQN, DDPG, TD3, SAC)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

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


def _host_array(value: ArrayLike) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


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
    ) -> None:
        if not 0 < num_envs <= capacity:
            raise ValueError(f"need 0 < num_envs <= capacity, got {num_envs} and {capacity}")
        self.num_envs = num_envs
        self.num_rows = capacity // num_envs
        self.capacity = self.num_rows * num_envs
        self.device = torch.device(device)
        self.storage_device = torch.device(storage_device or "cpu")
        self.optimize_memory = optimize_memory
        self._pos = 0
        self._full = False

        def empty(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
            return torch.empty(shape, dtype=dtype, device=self.storage_device)

        grid = (self.num_rows, num_envs)
        self._rows = {
            "obs": empty((*grid, *obs_shape), obs_dtype),
            "actions": empty((*grid, *action_shape), action_dtype),
            "rewards": empty(grid, torch.float32),
            "terminations": empty(grid, torch.bool),
            "truncations": empty(grid, torch.bool),
        }
        if optimize_memory:
            # Sequence number of the row's final observation in the side store, -1 if none.
            self._rows["final_seq"] = empty(grid, torch.int64).fill_(-1)
            self._last_next_obs = empty((num_envs, *obs_shape), obs_dtype)
            self._final_obs = empty((num_envs, *obs_shape), obs_dtype)  # grows on demand
            self._final_head = 0  # sequence number of the oldest stored final observation
            self._final_next = 0  # sequence number of the next one
        else:
            self._rows["next_obs"] = empty((*grid, *obs_shape), obs_dtype)
        self._columns: dict[str, np.ndarray | Tensor] = (
            {name: t.numpy() for name, t in self._rows.items()} if self.storage_device.type == "cpu" else self._rows
        )
        """Where `add` writes: numpy views of CPU storage (a row write costs a fraction of a tensor copy)."""
        self._sampled = {name: t.flatten(0, 1) for name, t in self._rows.items() if name in ReplayBatch._fields}
        """Where `sample` reads: the storage with one transition per row, indexed by `row * num_envs + env`."""

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
        """Bytes held by the storage tensors.

        ``optimize_memory`` saves ``(capacity - num_envs - slots) * obs_bytes`` bytes for
        8 extra bytes per transition, where ``obs_bytes`` is the size of one observation and
        ``slots`` the side-store size: ``num_envs``, grown to at most twice the largest number
        of ended transitions held at once. For 4x84x84 uint8 frames that is nearly half.
        """
        tensors = list(self._rows.values())
        if self.optimize_memory:
            tensors += [self._last_next_obs, self._final_obs]
        return sum(t.nbytes for t in tensors)

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
        values = (obs, actions, rewards, terminations, truncations, next_obs)
        for name, value in zip(_ADDED_COLUMNS, values, strict=True):
            if name in self._columns:  # next_obs is not stored with optimize_memory
                self._columns[name][pos] = to_storage(value)
        if self.optimize_memory:
            next_obs = torch.as_tensor(next_obs, device=self.storage_device)
            self._last_next_obs.copy_(next_obs)
            self._store_final_obs(next_obs, self._rows["terminations"][pos] | self._rows["truncations"][pos])
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
        if self.optimize_memory:
            data["next_obs"] = self._next_obs(index // self.num_envs, index % self.num_envs)
        data["dones"] = data["terminations"].float()
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
                last_next_obs=self._last_next_obs,
                final_obs=self._live_final_obs(),
                final_head=self._final_head,
                final_next=self._final_next,
            )
        return state

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        """Restore a ``state_dict`` taken from a buffer with the same configuration.

        The next ``add`` may start new episodes (environments are reset on resume): with
        ``optimize_memory`` the newest row's next observations are kept as final observations.
        """
        if state["capacity"] != self.capacity:
            raise ValueError(f"state has capacity {state['capacity']}, buffer {self.capacity}")
        self._pos, self._full = int(state["pos"]), bool(state["full"])
        if self.optimize_memory:
            self._rows["final_seq"].fill_(-1)
            self._last_next_obs.copy_(state["last_next_obs"])
            self._final_head, self._final_next = int(state["final_head"]), int(state["final_next"])
            final_obs = state["final_obs"]
            self._place_final_obs(final_obs, max(len(final_obs), self.num_envs))
        for name, t in self._rows.items():
            t[: len(state[name])].copy_(state[name])
        if self.optimize_memory and self.size:
            self._seal_newest_row()

    def _next_obs(self, rows: Tensor, envs: Tensor) -> Tensor:
        """Rebuild next observations in ``optimize_memory`` mode without host syncs."""
        following = self._rows["obs"][(rows + 1) % self.num_rows, envs]
        seq = self._rows["final_seq"][rows, envs]
        final = self._final_obs[seq.clamp(min=0) % len(self._final_obs)]
        next_obs = _where(seq >= 0, final, following)
        newest = rows == (self._pos - 1) % self.num_rows
        return _where(newest, self._last_next_obs[envs], next_obs)

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
