"""The deterministic actor-critic learner of DDPG and TD3 (book chs. 9-10): its exploration
noise and its update (its config: `rlrun.algos.configs.DeterministicConfig`); `rlrun.algos.ddpg` and `rlrun.algos.td3` set its switches."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch

from rlrun.algos._offpolicy import (
    ContinuousLearner,
    critic_step,
    optimizer_with_lr,
)
from rlrun.algos.configs import DeterministicConfig
from rlrun.config import TrainConfig
from rlrun.data.replay import ReplayBatch
from rlrun.envs.factory import VecEnv
from rlrun.networks.continuous import DeterministicActor, QEnsemble
from rlrun.run import Stateful
from rlrun.training.noise import ExplorationNoise, GaussianNoise, OrnsteinUhlenbeckNoise
from rlrun.training.targets import TargetSync


def make_noise(algo: DeterministicConfig, num_envs: int, action_dim: int, device: torch.device) -> ExplorationNoise:
    if algo.noise == "ou":
        return OrnsteinUhlenbeckNoise(num_envs, action_dim, algo.ou_theta, algo.noise_std, algo.ou_dt, device)
    return GaussianNoise(num_envs, action_dim, algo.noise_std, device)


class DeterministicLearner(ContinuousLearner):
    """Deterministic actor and Q critics with target networks: DDPG, or TD3 with its switches.

    Args:
        num_critics: 1 for DDPG; 2 for TD3's twin critics, whose minimum forms the target.
        policy_noise: std of the clipped Gaussian added to target actions (TD3's smoothing, eq. 10.1).
        noise_clip: bound c of that noise.
        policy_delay: critic updates per actor and target update (d of Alg. 10.1).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        envs: VecEnv,
        device: torch.device,
        *,
        num_critics: int = 1,
        policy_noise: float = 0.0,
        noise_clip: float = 0.0,
        policy_delay: int = 1,
    ) -> None:
        algo: DeterministicConfig = cfg.algo
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        super().__init__(action_space, envs.num_envs, algo.learning_starts, device)
        self.gamma, self.tau = algo.gamma, algo.tau
        self.policy_noise, self.noise_clip, self.policy_delay = policy_noise, noise_clip, policy_delay
        self.actor = DeterministicActor(cfg.network, obs_space, action_space).to(device)
        self.critic = QEnsemble(cfg.network, obs_space, action_space, num_critics).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_syncs = [
            TargetSync(self.actor_target, self.actor), TargetSync(self.critic_target, self.critic),
        ]
        self.actor_params = list(self.actor.parameters())
        self.actor_optimizer = optimizer_with_lr(self.actor_params, cfg.optimizer, algo.actor_lr)
        self.critic_optimizer = optimizer_with_lr(self.critic.parameters(), cfg.optimizer, algo.critic_lr)
        self.optimizers = [self.actor_optimizer, self.critic_optimizer]
        self.noise = make_noise(algo, envs.num_envs, action_space.shape[0], device)

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

    def update(self, batch: ReplayBatch, update: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            next_actions = self.actor_target(batch.next_obs)
            if self.policy_noise > 0:
                smoothing = torch.randn_like(next_actions) * self.policy_noise
                smoothing.clamp_(-self.noise_clip, self.noise_clip)
                next_actions = (next_actions + smoothing).clamp_(-1.0, 1.0)
            next_q = self.critic_target(batch.next_obs, next_actions).min(0).values
            targets = batch.rewards + self.gamma * (1.0 - batch.dones) * next_q
        stats = critic_step(self.critic, self.critic_optimizer, batch, targets)

        if update % self.policy_delay == 0:
            actor_loss = -self.critic.first(batch.obs, self.actor(batch.obs)).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward(inputs=self.actor_params)  # no gradients for the critic's weights
            self.actor_optimizer.step()
            for sync in self.target_syncs:
                sync.soft(self.tau)
            stats["actor_loss"] = actor_loss.detach()
        return stats


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> DeterministicActor:
    return DeterministicActor(cfg.network, obs_space, action_space)
