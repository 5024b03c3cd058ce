"""On-policy rollout storage and collection, shared by PPO, A2C, TRPO, NPG and friends."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import torch

from rlrun.data.memory import check_fits
from rlrun.envs.factory import Step, VecEnv
from rlrun.networks import numpy_acting
from rlrun.networks.actor_critic import ActorCritic

_COLUMNS = ("obs", "actions", "logprobs", "rewards", "values", "next_values", "terminations", "episode_ends")


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
        per_step = (int(np.prod(obs_space.shape)) * obs_dtype.itemsize
                    + int(np.prod(action_space.shape)) * action_dtype.itemsize + 6 * 4)
        check_fits(num_steps * num_envs * per_step,
                   f"a rollout of {num_steps} steps x {num_envs} envs of {obs_space.shape} observations",
                   "algo.num_steps", num_steps, torch.device(device))
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

    @property
    def on_cpu(self) -> bool:
        return self.obs.device.type == "cpu"

    def columns(self, as_numpy: bool) -> SimpleNamespace:
        """The storage to write step by step: the tensors, or numpy views of them on the CPU
        (a numpy row write costs a fraction of a tensor one)."""
        return SimpleNamespace(**{name: getattr(self, name).numpy() if as_numpy else getattr(self, name)
                                  for name in _COLUMNS})

    def flat_obs(self) -> torch.Tensor:
        return self.obs.reshape(self.batch_size, *self.obs_shape)

    def flat_actions(self) -> torch.Tensor:
        return self.actions.reshape(self.batch_size, *self.action_shape)


class TorchSampler:
    """Acts with the torch modules on `device` (any network, any device)."""

    def __init__(self, actor: ActorCritic, critic: ActorCritic, device: torch.device) -> None:
        self.actor, self.critic, self.device = actor, critic, device

    def columns(self, buffer: RolloutBuffer) -> SimpleNamespace:
        return buffer.columns(as_numpy=False)

    def put(self, array: np.ndarray) -> torch.Tensor:
        """An env output in the form the storage columns and `act` take."""
        return torch.as_tensor(array, device=self.device)

    @staticmethod
    def to_env(actions: torch.Tensor) -> np.ndarray:
        return actions.cpu().numpy()

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.actor is self.critic:
            dist, values = self.actor.dist_and_value(obs)
        else:
            dist, values = self.actor.dist(obs), self.critic.value(obs)
        actions, logprobs = dist.sample_and_log_prob()
        return actions, logprobs, values

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic.value(obs)


class NumpySampler(numpy_acting.NumpyActorCritic):
    """Acts in numpy on CPU storage (small MLP actor-critics; see rlrun.networks.numpy_acting)."""

    @staticmethod
    def columns(buffer: RolloutBuffer) -> SimpleNamespace:
        return buffer.columns(as_numpy=True)

    @staticmethod
    def put(array: np.ndarray) -> np.ndarray:
        return array

    @staticmethod
    def to_env(actions: np.ndarray) -> np.ndarray:
        return actions


def make_sampler(actor: ActorCritic, critic: ActorCritic, buffer: RolloutBuffer,
                 allow_numpy: bool = True) -> TorchSampler | NumpySampler:
    """The fastest sampler that supports the networks and the buffer's device."""
    if allow_numpy and buffer.on_cpu and numpy_acting.supports(actor, critic, buffer.num_envs):
        return NumpySampler(actor, critic, buffer.num_envs)
    return TorchSampler(actor, critic, buffer.obs.device)


@torch.no_grad()
def collect_rollout(
    agent: ActorCritic, envs: VecEnv, buffer: RolloutBuffer, obs: np.ndarray,
    on_step: Callable[[Step], None], act_in_numpy: bool, critic: ActorCritic | None = None,
) -> np.ndarray:
    """Fill `buffer` with `buffer.num_steps` steps of `agent`'s sampling policy (values from
    `critic`, by default `agent`); returns the next observations.

    Every env step is passed to `on_step` (the run's `record_episodes`, for the `rollout/`
    metrics); `act_in_numpy` lets small MLPs act in numpy (`config.TrainConfig.numpy_acting`).
    """
    sampler = make_sampler(agent, critic or agent, buffer, act_in_numpy)
    store, put = sampler.columns(buffer), sampler.put
    truncated_rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    obs = put(obs)
    for t in range(buffer.num_steps):
        actions, store.logprobs[t], store.values[t] = sampler.act(obs)
        store.obs[t] = obs
        store.actions[t] = actions
        step = envs.step(sampler.to_env(actions))
        on_step(step)
        store.rewards[t] = put(step.rewards)
        store.terminations[t] = put(step.terminations)
        store.episode_ends[t] = put(step.terminations | step.truncations)
        truncated = np.flatnonzero(step.truncations & ~step.terminations)
        if len(truncated):
            truncated_rows.append((t, truncated, step.final_obs[truncated]))
        obs = put(step.obs)
    store.next_values[:-1] = store.values[1:]
    store.next_values[-1] = sampler.value(obs)
    for t, rows, final_obs in truncated_rows:
        store.next_values[t, rows] = sampler.value(put(final_obs))
    return step.obs
