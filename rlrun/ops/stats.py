"""Averaging per-update statistics between log lines."""

from __future__ import annotations

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
