"""Averaging per-update statistics between log lines, and the window of recent episodes."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch


class MeanStats:
    """Running sums of per-update statistics (tensors, summed without host syncs) until logged.

    Each key is averaged over the updates that reported it (TD3's actor loss comes every
    `policy_delay` updates, its critic loss every update).
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop(self) -> dict[str, float]:
        """Means as `train/<key>` floats (empty before any update), then reset."""
        means = {f"train/{key}": float(value) / self.counts[key] for key, value in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means


def reported_means(columns: Mapping[str, Iterable[float]]) -> dict[str, float]:
    """{key: mean of its values that are not NaN (episodes that reported a number)}, for the keys
    that have one."""
    means = {}
    for key, column in columns.items():
        values = np.fromiter(column, np.float64)
        values = values[~np.isnan(values)]
        if len(values):
            means[key] = float(values.mean())
    return means


class EpisodeWindow:
    """Returns, lengths and final-info values of the last `size` finished episodes (all of them
    when `size` is None): the `rollout/` window of training, or one evaluation's episodes."""

    def __init__(self, size: int | None) -> None:
        self.returns: deque[float] = deque(maxlen=size)
        self.lengths: deque[int] = deque(maxlen=size)
        self.infos: dict[str, deque[float]] = {}
        """{info key: one value per episode of the window, NaN where it reported none}, for the
        keys reported since the run started."""
        self.total = 0
        """Episodes added since the run started, those that left the window included (count)."""

    def add(
        self, returns: np.ndarray, lengths: np.ndarray, infos: dict[str, np.ndarray] | None = None
    ) -> None:
        """Add ended episodes and their `infos` values (`Step.episode_infos`: one per episode)."""
        if infos or self.infos:
            for key in (infos or {}).keys() - self.infos.keys():  # earlier episodes reported none
                self.infos[key] = deque([math.nan] * len(self.returns), maxlen=self.returns.maxlen)
            for key, column in self.infos.items():
                reported = infos is not None and key in infos
                column.extend(infos[key].tolist() if reported else [math.nan] * len(returns))
        self.returns.extend(returns.tolist())
        self.lengths.extend(lengths.tolist())
        self.total += len(returns)

    def metrics(self) -> dict[str, float]:
        """`rollout/ep_return_mean`, `rollout/ep_len_mean` and `rollout/<info key>` over the window,
        and the episode count."""
        if not self.returns:
            return {}
        return {
            "rollout/ep_return_mean": float(np.mean(self.returns)),
            "rollout/ep_len_mean": float(np.mean(self.lengths)),
            "rollout/episodes": float(self.total),
            **{f"rollout/{key}": mean for key, mean in reported_means(self.infos).items()},
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "returns": list(self.returns), "lengths": list(self.lengths), "total": self.total,
        }
        if self.infos:
            state["infos"] = {key: list(column) for key, column in self.infos.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns.extend(state.get("returns", []))
        self.lengths.extend(state.get("lengths", []))
        for key, values in state.get("infos", {}).items():
            self.infos[key] = deque(values, maxlen=self.returns.maxlen)
        self.total = int(state.get("total", 0))
