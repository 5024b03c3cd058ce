"""One-hot observations kept as indices: one integer per one-hot segment, expanded when sampled."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def index_dtype(size: int) -> torch.dtype:
    """The smallest integer dtype that holds every index from 0 to ``size - 1``."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if size - 1 <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


class OneHotIndices:
    """Observations that are one-hot segments of ``sizes`` entries side by side (Gymnasium's
    flattening of Discrete, MultiDiscrete and Tuple/Dict spaces of these), stored as one index
    per segment in the smallest integer dtype that holds the largest segment's indices."""

    def __init__(self, sizes: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"one-hot segment sizes must be >= 1, got {sizes}")
        self.sizes = tuple(sizes)
        self.width = sum(sizes)
        self.dtype = dtype
        """dtype of the expanded one-hot vectors."""
        self.index_dtype = index_dtype(max(sizes))
        self._np_index_dtype = torch.empty(0, dtype=self.index_dtype).numpy().dtype
        starts = np.cumsum((0, *sizes[:-1]))
        self._segments = [slice(start, start + size) for start, size in zip(starts, sizes)]
        self._device_starts = torch.as_tensor(starts, device=device)

    def encode(self, obs: np.ndarray) -> np.ndarray:
        """Indices ``(..., len(sizes))`` of one-hot observations ``(..., width)``.

        Raises:
            ValueError: a segment of ``obs`` is not one 1 among zeros.
        """
        flat = obs.reshape(-1, self.width)
        indices = np.empty((len(flat), len(self.sizes)), self._np_index_dtype)
        ones = 0
        for k, segment in enumerate(self._segments):  # a loop over segments, not rows
            part = flat[:, segment]
            indices[:, k] = part.argmax(1)
            ones += np.count_nonzero(part.max(1) == 1)
        # A 1 in every segment of every row, and no other nonzero: one-hot in every segment.
        if ones != indices.size or np.count_nonzero(flat) != indices.size:
            raise ValueError(
                f"observations must be one-hot in each segment of sizes {self.sizes} to be "
                "stored as indices"
            )
        return indices.reshape(*obs.shape[:-1], len(self.sizes))

    def decode(self, indices: Tensor) -> Tensor:
        """One-hot observations ``(..., width)`` of ``dtype`` from ``indices``, on their device:
        one scatter, whatever the number of rows."""
        one_hot = torch.zeros((*indices.shape[:-1], self.width), dtype=self.dtype,
                              device=indices.device)
        return one_hot.scatter_(-1, indices.long() + self._device_starts, 1)
