"""Evaluation protocol: separate envs, frozen normalisation, deterministic actions, raw returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rlrun.envs.factory import VecEnv
from rlrun.training.stats import EpisodeWindow, reported_means


class EvaluationInterrupted(Exception):
    """A stop signal arrived while evaluation episodes were running."""


@dataclass
class EvalResult:
    returns: np.ndarray
    """Raw episode returns (one per episode)."""
    lengths: np.ndarray
    """Episode lengths (env steps)."""
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    """{info key of `logger.info_keys`: its value in each episode's final info, NaN where the
    episode reported no number}, for the keys that one episode reported."""

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
            **{f"eval/{key}": mean for key, mean in reported_means(self.infos).items()},
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
    """Run `episodes` episodes with `policy.act` and return their raw returns (and the final-info
    values the envs report, `Step.episode_infos`).

    Each env runs a fixed quota of episodes so that short episodes are not over-represented.
    `should_stop` is asked after every step; when it says yes, EvaluationInterrupted is raised.
    """
    quotas = np.array(episode_quotas(episodes, envs.num_envs))
    done_counts = np.zeros(envs.num_envs, np.int64)
    ran = EpisodeWindow(None)
    obs = envs.reset(seed=seed)
    while (done_counts < quotas).any():
        with torch.inference_mode():
            actions = policy.act(torch.as_tensor(obs, device=device), deterministic)
        step = envs.step(actions.cpu().numpy())
        ended = np.flatnonzero(step.terminations | step.truncations)
        if len(ended):
            counted = done_counts[ended] < quotas[ended]
            ran.add(step.episode_returns[counted], step.episode_lengths[counted],
                    {key: values[counted] for key, values in step.episode_infos.items()})
            done_counts[ended[counted]] += 1
        obs = step.obs
        if should_stop is not None and should_stop():
            raise EvaluationInterrupted
    return EvalResult(np.array(ran.returns), np.array(ran.lengths),
                      {key: np.array(values) for key, values in ran.infos.items()})
