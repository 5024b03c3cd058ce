"""Whole-episode collection with a per-env episode quota (REINFORCE, CEM).

Every batch starts from a reset, and env i runs until it has finished `quotas[i]` episodes.
The vector env steps all its envs together, so an env that has met its quota keeps
stepping until the last one is done: those extra steps are marked invalid, discarded and not
counted. A per-env quota keeps the batch unbiased; stopping at the K-th episode to end across
all envs would over-represent short episodes. Episodes cut by the time limit count as
finished; their real final observations are kept for bootstrapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rlrun.envs.factory import Step, VecEnv


@dataclass
class EpisodeBatch:
    """Time-major `[T, N]` storage of whole episodes; only `valid` steps belong to the batch."""

    obs: torch.Tensor | None
    """Observations s_t, [T, N, *obs_shape] (None when not stored)."""
    actions: torch.Tensor | None
    """Actions a_t, [T, N, *action_shape] (None when not stored)."""
    rewards: torch.Tensor
    """Rewards r_t (normalised when the env normalises rewards), [T, N]."""
    terminations: torch.Tensor
    """1 where s_{t+1} is terminal, [T, N]."""
    episode_ends: torch.Tensor
    """1 where the episode ended at t (terminated or truncated), [T, N]."""
    valid: torch.Tensor
    """True where step t of env i is part of one of its quota episodes, [T, N] bool."""
    truncated: list[tuple[int, np.ndarray, torch.Tensor]]
    """(t, env rows, real final observations) of quota episodes truncated at step t."""
    env_returns: torch.Tensor
    """Mean raw (unnormalised) return of each env's quota episodes, [N]."""

    @property
    def num_steps(self) -> int:
        """Valid env steps in the batch."""
        return int(self.valid.sum())


def episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """Split `episodes` over `num_envs` as evenly as possible (the first envs take the rest)."""
    return np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])


@torch.no_grad()
def collect_episodes(
    act: Callable[[torch.Tensor], torch.Tensor],
    envs: VecEnv,
    obs: torch.Tensor,
    quotas: np.ndarray,
    on_step: Callable[[Step], None],
    device: torch.device,
    store_transitions: bool = True,
) -> tuple[EpisodeBatch, torch.Tensor]:
    """Act with `act(obs) -> actions` from the first observations `obs` of fresh episodes until
    every quota is met; returns the batch and the first observations of the next batch.

    The envs are reset at the end of a batch, not at the start of the next, so that a
    checkpoint taken between batches holds envs at the start of their next episodes.
    Every env step is passed to `on_step` (the run's `record_episodes`, for the `rollout/` metrics).
    """
    done = np.zeros(envs.num_envs, np.int64)
    return_sums = np.zeros(envs.num_envs, np.float64)
    active = done < quotas
    obs_rows, action_rows, rewards, terminations, ends, valid = [], [], [], [], [], []
    truncated: list[tuple[int, np.ndarray, torch.Tensor]] = []
    t = 0
    while active.any():
        actions = act(obs)
        step = envs.step(actions.cpu().numpy())
        on_step(step)
        if store_transitions:
            obs_rows.append(obs)
            action_rows.append(actions)
        ended = step.terminations | step.truncations
        rewards.append(step.rewards)
        terminations.append(step.terminations)
        ends.append(ended)
        valid.append(active)
        rows = np.flatnonzero(active & step.truncations & ~step.terminations)
        if len(rows):
            truncated.append((t, rows, torch.as_tensor(step.final_obs[rows], device=device)))
        ended_rows = np.flatnonzero(ended)
        counted = active[ended_rows]
        return_sums[ended_rows[counted]] += step.episode_returns[counted]
        done[ended_rows[counted]] += 1
        active = done < quotas
        obs = torch.as_tensor(step.obs, device=device)
        t += 1

    def stack(rows: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.stack(rows), dtype=dtype, device=device)

    next_obs = torch.as_tensor(envs.reset(), device=device)  # continues each env's random stream
    return EpisodeBatch(
        obs=torch.stack(obs_rows) if store_transitions else None,
        actions=torch.stack(action_rows) if store_transitions else None,
        rewards=stack(rewards, torch.float32),
        terminations=stack(terminations, torch.float32),
        episode_ends=stack(ends, torch.float32),
        valid=stack(valid, torch.bool),
        truncated=truncated,
        env_returns=torch.as_tensor(return_sums / np.maximum(quotas, 1), dtype=torch.float32, device=device),
    ), next_obs
