"""What every replay storage shares: the sampled batch, the rows of per-transition columns, the
side store of final observations, the state dict's common entries and the one-hot encoding."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rlrun.data.memory import check_fits
from rlrun.data.one_hot import OneHotIndices, index_dtype

ArrayLike = np.ndarray | Tensor
Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]
"""Name to shape and dtype of a storage's tensors."""

OBS_STATE = ("obs", "next_obs", "final_obs", "last_next_obs")
"""Entries of a state dict that hold observations."""


class ReplayBatch(NamedTuple):
    """Sampled transitions, every tensor on the buffer's ``device``.

    ``terminations`` is 1.0 (float) only where the episode terminated: a truncated transition
    is bootstrapped from ``next_obs`` like any other, so the TD target is
    ``rewards + gamma * (1 - terminations) * V(next_obs)``.
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminations: Tensor


def host_array(value: ArrayLike) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``torch.where`` with a per-sample ``mask`` broadcast over the trailing dims of ``a``."""
    return torch.where(mask.view(-1, *[1] * (a.dim() - 1)), a, b)


def num_rows(capacity: int, num_envs: int) -> int:
    """Rows of ``num_envs`` transitions a buffer of ``capacity`` transitions holds."""
    if not 0 < num_envs <= capacity:
        raise ValueError(f"need 0 < num_envs <= capacity, got {num_envs} and {capacity}")
    return capacity // num_envs


def stored_obs(
    obs_shape: tuple[int, ...], obs_dtype: torch.dtype, one_hot: tuple[int, ...] | None
) -> tuple[tuple[int, ...], torch.dtype]:
    """Shape and dtype of an observation as stored: one index per segment with ``one_hot``."""
    if one_hot is None:
        return tuple(obs_shape), obs_dtype
    if tuple(obs_shape) != (sum(one_hot),):
        raise ValueError(f"one_hot sizes {one_hot} do not add up to observations of {obs_shape}")
    return (len(one_hot),), index_dtype(max(one_hot))


class FinalObservations:
    """Side store of the final observations of ended transitions still in a buffer.

    Each kept observation gets the next sequence number; rows are overwritten in the order they
    were written, so the oldest numbers leave first (``retire``). The store starts with
    ``slots`` slots and doubles when full, up to ``capacity``.
    """

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, slots: int, capacity: int,
                 device: torch.device) -> None:
        self.store = torch.empty((slots, *shape), dtype=dtype, device=device)
        self.capacity = capacity
        self.head = 0
        """Sequence number of the oldest stored final observation."""
        self.next = 0
        """Sequence number of the next one."""

    def retire(self, count: int) -> None:
        """Forget the ``count`` oldest final observations (their rows are being overwritten)."""
        self.head += count

    def append(self, final_obs: Tensor) -> Tensor:
        """Add final observations, growing the store if needed; returns their numbers."""
        live = self.next - self.head + len(final_obs)
        if live > len(self.store):
            slots = min(max(live, 2 * len(self.store)), self.capacity)
            self._place(self.live(), slots)
        new_seq = torch.arange(self.next, self.next + len(final_obs), device=self.store.device)
        self.store[new_seq % len(self.store)] = final_obs
        self.next += len(final_obs)
        return new_seq

    def live(self) -> Tensor:
        """The contents from the oldest to the newest final observation."""
        seq = torch.arange(self.head, self.next, device=self.store.device)
        return self.store[seq % len(self.store)]

    def state_dict(self) -> dict[str, Tensor | int]:
        return {"final_obs": self.live(), "final_head": self.head, "final_next": self.next}

    def load_state_dict(self, state: dict[str, Tensor | int], min_slots: int) -> None:
        self.head, self.next = int(state["final_head"]), int(state["final_next"])
        final_obs = state["final_obs"]
        self._place(final_obs, max(len(final_obs), min_slots))

    def _place(self, final_obs: Tensor, slots: int) -> None:
        """Reallocate the store with ``slots`` slots holding ``final_obs``, oldest first."""
        seq = torch.arange(self.head, self.head + len(final_obs), device=self.store.device)
        store = self.store
        self.store = store.new_empty((slots, *store.shape[1:]))
        self.store[seq % slots] = final_obs.to(store)


class ReplayStorage:
    """Circular rows of transitions from ``num_envs`` parallel environments, sampled uniformly.

    Storage is ``capacity // num_envs`` rows, one per ``add``, of ``num_envs`` transitions
    each, so ``capacity`` is rounded down to a multiple of ``num_envs``. Tensors live on
    ``storage_device`` (CPU unless given) and samples are moved to ``device``. Each storage
    lays out its observations in ``layout`` and rebuilds those it does not store as columns in
    ``_rebuild_observations``.

    ``one_hot`` gives the sizes of the one-hot segments that make up each observation of shape
    ``(sum(one_hot),)``: observations are stored as one index per segment, in the smallest
    integer dtype that holds them, and expanded to one-hot vectors of ``obs_dtype`` on
    ``device`` when sampled, equal to the stored vectors. ``add`` raises ``ValueError`` unless
    the observations are one-hot in every segment.
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
        one_hot: tuple[int, ...] | None = None,
    ) -> None:
        self.num_envs = num_envs
        self.num_rows = num_rows(capacity, num_envs)
        self.capacity = self.num_rows * num_envs
        self.device = torch.device(device)
        self.storage_device = torch.device(storage_device or "cpu")
        self._pos = 0
        self._full = False
        self._one_hot = None if one_hot is None else OneHotIndices(one_hot, obs_dtype, self.device)
        rows, self._others = self.layout(self.num_rows, obs_shape, action_shape, num_envs,
                                         obs_dtype, action_dtype, one_hot)
        check_fits(
            self.required_bytes(capacity, obs_shape, action_shape, num_envs, obs_dtype,
                                action_dtype, one_hot),
            f"a replay buffer of {capacity:,} transitions of {tuple(obs_shape)} "
            f"{'one-hot observations stored as indices' if one_hot else 'observations'}",
            "algo.buffer_size", capacity, self.storage_device,
        )
        self._rows = {name: self._empty(spec) for name, spec in rows.items()}
        on_cpu = self.storage_device.type == "cpu"
        self._to_storage = host_array if on_cpu else torch.as_tensor
        """How `add` converts a value for its storage."""
        self._columns: dict[str, np.ndarray | Tensor] = (
            {name: t.numpy() for name, t in self._rows.items()} if on_cpu else self._rows
        )
        """Where `add` writes: numpy views of CPU storage (a row write costs less than a copy)."""
        self._sampled = {
            name: t.flatten(0, 1) for name, t in self._rows.items() if name in ReplayBatch._fields
        }
        """Where `sample` reads: one transition per row, indexed by `row * num_envs + env`."""

    def _final_observations(self) -> FinalObservations:
        """An empty side store of the ended transitions' final observations, for a storage whose
        layout has `final_seq` rows (the row's sequence number in the store, -1: none) and
        `final_obs` (the store's first slots)."""
        self._rows["final_seq"].fill_(-1)
        shape, dtype = self._others["final_obs"]
        return FinalObservations(shape[1:], dtype, shape[0], self.capacity, self.storage_device)

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
        """Shapes and dtypes of the per-transition columns every storage keeps (each storage
        adds its observations, then its other arrays)."""
        grid = (num_rows, num_envs)
        rows: Layout = {
            "actions": ((*grid, *action_shape), action_dtype),
            "rewards": (grid, torch.float32),
            "terminations": (grid, torch.bool),
            "truncations": (grid, torch.bool),
        }
        return rows, {}

    @classmethod
    def required_bytes(
        cls,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        num_envs: int,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        one_hot: tuple[int, ...] | None = None,
    ) -> int:
        """``nbytes`` of a new buffer built with these arguments, computed without allocating it."""
        rows, others = cls.layout(num_rows(capacity, num_envs), obs_shape, action_shape,
                                  num_envs, obs_dtype, action_dtype, one_hot)
        specs = [*rows.values(), *others.values()]
        return sum(math.prod(shape) * dtype.itemsize for shape, dtype in specs)

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
        """Bytes held by the buffer's tensors (``required_bytes`` for a new buffer)."""
        return sum(t.nbytes for t in self._tensors())

    def _tensors(self) -> list[Tensor]:
        return list(self._rows.values())

    def _empty(self, spec: tuple[tuple[int, ...], torch.dtype]) -> Tensor:
        return torch.empty(spec[0], dtype=spec[1], device=self.storage_device)

    def _encoded(self, obs: ArrayLike, next_obs: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        """Observations as stored: one-hot segments as indices (checked before anything is
        written)."""
        if self._one_hot is None:
            return obs, next_obs
        both = self._one_hot.encode(np.concatenate((host_array(obs), host_array(next_obs))))
        return both[: self.num_envs], both[self.num_envs :]

    def _write(self, **columns: ArrayLike) -> None:
        """Write one vector-env step's ``columns`` into the current row."""
        for name, value in columns.items():
            self._columns[name][self._pos] = self._to_storage(value)

    def _advance(self) -> None:
        self._pos = (self._pos + 1) % self.num_rows
        self._full = self._full or self._pos == 0

    def _rebuild_observations(self, index: Tensor, batch: dict[str, Tensor]) -> None:
        """Put the observations of the transitions at ``index`` that are not stored as columns
        into ``batch`` (a plain buffer stores both)."""

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> ReplayBatch:
        """Draw ``batch_size`` transitions uniformly with replacement using ``generator``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        rng_device = generator.device if generator is not None else self.storage_device
        index = torch.randint(self.size, (batch_size,), generator=generator, device=rng_device)
        index = index.to(self.storage_device)
        data = {name: t.index_select(0, index) for name, t in self._sampled.items()}
        data["terminations"] = data["terminations"].float()
        self._rebuild_observations(index, data)
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
        return state

    def _checked_state(self, state: dict[str, Tensor | int]) -> dict[str, Tensor | int]:
        """``state`` as this buffer stores it; raises ``ValueError`` for another capacity."""
        if state["capacity"] != self.capacity:
            raise ValueError(f"state has capacity {state['capacity']}, buffer {self.capacity}")
        if self._one_hot is None:
            return state
        return {  # a state of one-hot vectors is stored as indices
            name: torch.from_numpy(self._one_hot.encode(value.cpu().numpy()))
            if name in OBS_STATE and value.is_floating_point() else value
            for name, value in state.items()
        }

    def _load_rows(self, state: dict[str, Tensor | int]) -> None:
        self._pos, self._full = int(state["pos"]), bool(state["full"])
        for name, t in self._rows.items():
            t[: len(state[name])].copy_(state[name])
