"""What DDPG and TD3 share (book chs. 9-10): the deterministic actor and its Q critics with
their target copies and optimizers, and the exploration noise (its config:
`rlrun.algos.configs.DeterministicConfig`). Each algorithm's update and losses are in its own
module, `rlrun.algos.ddpg` and `rlrun.algos.td3`."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch

from rlrun.algos._offpolicy import ContinuousLearner, optimizer_with_lr
from rlrun.algos.configs import DeterministicConfig
from rlrun.config import TrainConfig
from rlrun.envs.factory import VecEnv
from rlrun.networks.continuous import DeterministicActor, QEnsemble
from rlrun.run.facade import Stateful
from rlrun.training.noise import ExplorationNoise, GaussianNoise, OrnsteinUhlenbeckNoise
from rlrun.training.targets import TargetSync


def make_noise(algo: DeterministicConfig, num_envs: int, action_dim: int, device: torch.device) -> ExplorationNoise:
    if algo.noise == "ou":
        return OrnsteinUhlenbeckNoise(num_envs, action_dim, algo.ou_theta, algo.noise_std, algo.ou_dt, device)
    return GaussianNoise(num_envs, action_dim, algo.noise_std, device)


class DeterministicLearner(ContinuousLearner):
    """Deterministic actor μ_θ and `num_critics` Q critics (1 for DDPG, TD3's 2), each with a
    target copy and an optimizer, acting with μ_θ(s) plus the configured exploration noise."""

    def __init__(self, cfg: TrainConfig, envs: VecEnv, device: torch.device, num_critics: int) -> None:
        self.algo: DeterministicConfig = cfg.algo
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        super().__init__(action_space, envs.num_envs, self.algo.learning_starts, device)
        self.actor = DeterministicActor(cfg.network, obs_space, action_space).to(device)
        self.critic = QEnsemble(cfg.network, obs_space, action_space, num_critics).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_syncs = [
            TargetSync(self.actor_target, self.actor), TargetSync(self.critic_target, self.critic),
        ]
        self.actor_params = list(self.actor.parameters())
        self.actor_optimizer = optimizer_with_lr(self.actor_params, cfg.optimizer, self.algo.actor_lr)
        self.critic_optimizer = optimizer_with_lr(self.critic.parameters(), cfg.optimizer, self.algo.critic_lr)
        self.optimizers = [self.actor_optimizer, self.critic_optimizer]
        self.noise = make_noise(self.algo, envs.num_envs, action_space.shape[0], device)

    def tracked(self) -> dict[str, Stateful]:
        return {
            "actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
            "critic_target": self.critic_target, "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer, "noise": self.noise,
        }

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        return (self.actor(obs) + self.noise.sample()).clamp_(-1.0, 1.0)

    def end_episodes(self, ended: np.ndarray) -> None:
        self.noise.reset(ended)

    def sync_targets(self) -> None:
        """Polyak-average both target networks toward the online ones by `algo.tau` (book §2.6)."""
        for sync in self.target_syncs:
            sync.soft(self.algo.tau)


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> DeterministicActor:
    return DeterministicActor(cfg.network, obs_space, action_space)
