"""Averaging per-update statistics between log lines."""

from __future__ import annotations

import torch


class MeanStats:
    """Running sums of per-step statistics (tensors, summed without host syncs) until logged."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def pop(self) -> dict[str, float]:
        """Means as `train/<key>` floats (empty before any step), then reset."""
        means = {f"train/{key}": float(value) / self.count for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        return means
