"""On-policy rollout storage and collection, shared by PPO, A2C, TRPO, NPG and friends."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rlrun.envs.factory import VecEnv
from rlrun.networks.actor_critic import ActorCritic
from rlrun.run import Run


class RolloutBuffer:
    """Time-major storage `[T, N, ...]` for T steps of N envs, preallocated on the device.

    `next_values[t]` is V(s_{t+1}) of the real next state: the next row's value, or the value
    of the final observation where the episode was truncated at t. Terminations never
    bootstrap (the estimators multiply by 1 - terminations).
    """

    def __init__(self, num_steps: int, num_envs: int, obs_space: gym.Space, action_space: gym.Space,
                 device: torch.device) -> None:
        self.num_steps, self.num_envs = num_steps, num_envs
        self.obs_shape, self.action_shape = obs_space.shape, action_space.shape
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        action_dtype = torch.long if isinstance(action_space, gym.spaces.Discrete) else torch.float32
        shape = (num_steps, num_envs)
        self.obs = torch.zeros((*shape, *obs_space.shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros((*shape, *action_space.shape), dtype=action_dtype, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.next_values = torch.zeros(shape, device=device)
        self.terminations = torch.zeros(shape, device=device)
        self.episode_ends = torch.zeros(shape, device=device)

    @property
    def batch_size(self) -> int:
        return self.num_steps * self.num_envs

    def flat_obs(self) -> torch.Tensor:
        return self.obs.reshape(self.batch_size, *self.obs_shape)

    def flat_actions(self) -> torch.Tensor:
        return self.actions.reshape(self.batch_size, *self.action_shape)


@torch.no_grad()
def collect_rollout(
    agent: ActorCritic, envs: VecEnv, buffer: RolloutBuffer, obs: torch.Tensor, run: Run
) -> torch.Tensor:
    """Fill `buffer` with `buffer.num_steps` steps of the sampling policy; returns the next obs.

    Finished training episodes are reported to `run` for the `rollout/` metrics.
    """
    device = buffer.obs.device
    truncated_rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    for t in range(buffer.num_steps):
        dist, value = agent.dist_and_value(obs)
        action, logprob = dist.sample_and_log_prob()
        buffer.obs[t] = obs
        buffer.actions[t] = action
        buffer.logprobs[t] = logprob
        buffer.values[t] = value
        step = envs.step(action.cpu().numpy())
        run.record_episodes(step)
        buffer.rewards[t] = torch.from_numpy(step.rewards)
        buffer.terminations[t] = torch.from_numpy(step.terminations)
        buffer.episode_ends[t] = torch.from_numpy(step.terminations | step.truncations)
        truncated = np.flatnonzero(step.truncations & ~step.terminations)
        if len(truncated):
            truncated_rows.append((t, truncated, step.final_obs[truncated]))
        obs = torch.as_tensor(step.obs, device=device)
    buffer.next_values[:-1] = buffer.values[1:]
    buffer.next_values[-1] = agent.value(obs)
    for t, rows, final_obs in truncated_rows:
        buffer.next_values[t, rows] = agent.value(torch.as_tensor(final_obs, device=device))
    return obs
