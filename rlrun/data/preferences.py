"""Storage of reward learning from preferences (book ch. 14.2): trajectory segments cut from a
rollout and the annotated segment pairs."""

from __future__ import annotations

import gymnasium as gym
import torch

from rlrun.data.rollout import RolloutBuffer
from rlrun.ops.preferences import segment_returns


class PreferenceDataset:
    """Annotated segment pairs (σ¹, σ², μ) (eq. 14.4), preallocated for `capacity` pairs.

    Holds per pair: obs and actions [2, k, ...], masks [2, k] (0 on absorbing steps), μ(1),
    the true segment returns (for diagnostics only), a held-out flag and the Poisson(1)
    bootstrap counts of the ensemble members. Its state is tensors only.
    """

    def __init__(self, capacity: int, segment_len: int, obs_space: gym.Space, action_space: gym.Space,
                 members: int, device: torch.device) -> None:
        obs_dtype = torch.long if isinstance(obs_space, gym.spaces.Discrete) else torch.float32
        action_dtype = torch.long if isinstance(action_space, gym.spaces.Discrete) else torch.float32
        shape = (capacity, 2, segment_len)
        self.obs = torch.zeros((*shape, *obs_space.shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros((*shape, *action_space.shape), dtype=action_dtype, device=device)
        self.masks = torch.zeros(shape, device=device)
        self.mu1 = torch.zeros(capacity, device=device)
        self.true_returns = torch.zeros(capacity, 2, device=device)
        self.held_out = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.weights = torch.zeros(capacity, members, device=device)
        self.size = 0

    @property
    def capacity(self) -> int:
        return len(self.mu1)

    def add(self, obs: torch.Tensor, actions: torch.Tensor, masks: torch.Tensor, mu1: torch.Tensor,
            true_returns: torch.Tensor, val_fraction: float) -> None:
        """Append pairs (leading axis) and draw their held-out flags and bootstrap counts."""
        n = min(len(mu1), self.capacity - self.size)
        rows = slice(self.size, self.size + n)
        self.obs[rows], self.actions[rows], self.masks[rows] = obs[:n], actions[:n], masks[:n]
        self.mu1[rows], self.true_returns[rows] = mu1[:n], true_returns[:n]
        self.held_out[rows] = torch.rand(n, device=self.mu1.device) < val_fraction
        self.weights[rows] = torch.poisson(torch.ones(n, self.weights.shape[1], device=self.mu1.device))
        self.size += n

    def indices(self, held_out: bool) -> torch.Tensor:
        return torch.nonzero(self.held_out[: self.size] == held_out).squeeze(-1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"obs": self.obs, "actions": self.actions, "masks": self.masks, "mu1": self.mu1,
                "true_returns": self.true_returns, "held_out": self.held_out, "weights": self.weights,
                "size": torch.tensor(self.size)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("obs", "actions", "masks", "mu1", "true_returns", "held_out", "weights"):
            getattr(self, name).copy_(state[name])
        self.size = int(state["size"])


def sample_segments(buffer: RolloutBuffer, count: int, segment_len: int) -> dict[str, torch.Tensor]:
    """Up to `count` random segments of the rollout (obs, actions, masks, true_returns; leading axis).

    A segment starts at a random step and env; steps after its episode's termination are
    masked (absorbing, reward 0); segments cut by a truncation before their last step are dropped.
    """
    device = buffer.rewards.device
    starts = torch.randint(0, buffer.num_steps - segment_len + 1, (count,), device=device)
    envs = torch.randint(0, buffer.num_envs, (count,), device=device)
    steps = starts[:, None] + torch.arange(segment_len, device=device)
    ends = buffer.episode_ends[steps, envs[:, None]]
    masks = (ends.cumsum(1) - ends == 0).float()
    cut = ((ends - buffer.terminations[steps, envs[:, None]]) * masks)[:, :-1].sum(1) > 0
    keep = ~cut
    steps, envs, masks = steps[keep], envs[keep], masks[keep]
    return {
        "obs": buffer.obs[steps, envs[:, None]],
        "actions": buffer.actions[steps, envs[:, None]],
        "masks": masks,
        "true_returns": segment_returns(buffer.rewards[steps, envs[:, None]], masks),
    }
