"""Averaging per-update statistics between log lines, and the window of recent episodes."""

from __future__ import annotations

from collections import deque
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


class EpisodeWindow:
    """Returns and lengths of the last `size` finished training episodes (the `rollout/` window)."""

    def __init__(self, size: int) -> None:
        self.returns: deque[float] = deque(maxlen=size)
        self.lengths: deque[int] = deque(maxlen=size)
        self.total = 0
        """Training episodes finished since the run started (count)."""

    def add(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        self.returns.extend(returns.tolist())
        self.lengths.extend(lengths.tolist())
        self.total += len(returns)

    def metrics(self) -> dict[str, float]:
        """`rollout/ep_return_mean` and `rollout/ep_len_mean` over the window, and the episode count."""
        if not self.returns:
            return {}
        return {
            "rollout/ep_return_mean": float(np.mean(self.returns)),
            "rollout/ep_len_mean": float(np.mean(self.lengths)),
            "rollout/episodes": float(self.total),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"returns": list(self.returns), "lengths": list(self.lengths), "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns.extend(state.get("returns", []))
        self.lengths.extend(state.get("lengths", []))
        self.total = int(state.get("total", 0))
