"""Evaluation protocol: separate envs, frozen normalisation, deterministic actions, raw returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rlrun.envs.factory import VecEnv


class EvaluationInterrupted(Exception):
    """A stop signal arrived while evaluation episodes were running."""


@dataclass
class EvalResult:
    returns: np.ndarray
    """Raw episode returns (one per episode)."""
    lengths: np.ndarray
    """Episode lengths (env steps)."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    @property
    def iqm(self) -> float:
        """Interquartile mean: the mean of the middle 50% of returns."""
        ordered = np.sort(self.returns)
        cut = len(ordered) // 4
        return float(ordered[cut : len(ordered) - cut].mean())

    def metrics(self) -> dict[str, float]:
        return {
            "eval/return_mean": self.mean,
            "eval/return_std": self.std,
            "eval/return_iqm": self.iqm,
            "eval/ep_len_mean": float(self.lengths.mean()),
        }


def episode_quotas(episodes: int, num_envs: int) -> list[int]:
    """Episodes each env runs so that `episodes` are spread over `num_envs` envs (counts)."""
    return [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]


def evaluate(
    policy: nn.Module,
    envs: VecEnv,
    episodes: int,
    seed: int,
    device: torch.device,
    deterministic: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> EvalResult:
    """Run `episodes` episodes with `policy.act` and return their raw returns.

    Each env runs a fixed quota of episodes so that short episodes are not over-represented.
    `should_stop` is asked after every step; when it says yes, EvaluationInterrupted is raised.
    """
    quotas = np.array(episode_quotas(episodes, envs.num_envs))
    done_counts = np.zeros(envs.num_envs, np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    obs = envs.reset(seed=seed)
    while (done_counts < quotas).any():
        with torch.inference_mode():
            actions = policy.act(torch.as_tensor(obs, device=device), deterministic)
        step = envs.step(actions.cpu().numpy())
        ended = np.flatnonzero(step.terminations | step.truncations)
        for k, i in enumerate(ended):
            if done_counts[i] < quotas[i]:
                returns.append(float(step.episode_returns[k]))
                lengths.append(int(step.episode_lengths[k]))
                done_counts[i] += 1
        obs = step.obs
        if should_stop is not None and should_stop():
            raise EvaluationInterrupted
    return EvalResult(np.array(returns), np.array(lengths))
