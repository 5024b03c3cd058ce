"""Vectorised observation and reward normalisation (one set of statistics for all envs).

Replaces per-env Gymnasium wrapper chains: one numpy update per vector step. The state is
plain tensors so it can live in a checkpoint loaded with `weights_only=True`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class RunningMeanStd:
    """Running mean and variance over a batch axis (parallel algorithm of Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, batch: np.ndarray) -> None:
        n = batch.shape[0]
        if n == 1:  # one env: the batch mean is the row and its spread is zero (same result, fewer ops)
            delta = batch[0] - self.mean
            total = self.count + 1
            self.mean = self.mean + delta * (1 / total)
            self.var = (self.var * self.count + np.square(delta) * (self.count / total)) / total
            self.count = total
            return
        batch_mean = np.add.reduce(batch, 0) / n
        batch_m2 = np.add.reduce(np.square(batch - batch_mean), 0)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * (n / total)
        self.var = (self.var * self.count + batch_m2 + np.square(delta) * (self.count * n / total)) / total
        self.count = total

    def state_dict(self) -> dict[str, torch.Tensor | float]:
        import torch

        return {"mean": torch.tensor(np.asarray(self.mean)), "var": torch.tensor(np.asarray(self.var)),
                "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = state["mean"].numpy().astype(np.float64)
        self.var = state["var"].numpy().astype(np.float64)
        self.count = float(state["count"])


class ObsNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped to ±clip; statistics update while training."""

    def __init__(self, shape: tuple[int, ...], clip: float, epsilon: float = 1e-8) -> None:
        self.rms = RunningMeanStd(shape)
        self.clip = clip
        self.epsilon = epsilon

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self.rms.update(obs)
        scaled = ((obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)).astype(np.float32)
        return _clip(scaled, self.clip)


class RewardNormalizer:
    """Scale rewards by the running std of the discounted return (Engstrom et al. 2020)."""

    def __init__(self, num_envs: int, gamma: float, clip: float, epsilon: float = 1e-8) -> None:
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon

    def __call__(self, rewards: np.ndarray, episode_ends: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns)
        self.returns[episode_ends] = 0.0  # the next episode's return starts from zero
        scaled = (rewards / np.sqrt(self.rms.var + self.epsilon)).astype(np.float32)
        return _clip(scaled, self.clip)


def _clip(x: np.ndarray, bound: float) -> np.ndarray:
    """In-place clip to [-bound, bound] with two ufunc calls (np.clip's wrapper costs more)."""
    return np.minimum(np.maximum(x, -bound, out=x), bound, out=x)
