"""Soft Actor-Critic with automatic entropy tuning (Haarnoja et al. 2018a, 2018b).

Follows book ch. 11 (eqs. 11.2-11.8, Alg. 11.1) and the lecture's "Soft Actor-Critic" box
(Algorithm 1), in the second version without a state-value network (2018b):
- squashed Gaussian actor ã = tanh(μ_θ(s) + σ_θ(s) ⊙ ε) (eqs. 11.6, 11.8), reparameterised,
  with log π(ã|s) = log N(u) - Σ log(1 - tanh(u)²) computed stably as
  2(log 2 - u - softplus(-2u)) (`rlrun.ops.distributions.TanhGaussian`);
- twin critics on the soft Bellman target (eq. 11.5)
  y = r + γ (1 - terminated) (min_i Q_ψi'(s', a') - α log π(a'|s')), a' ~ π(·|s'), with
  Polyak-averaged target critics and no target actor. Alg. 11.1 prints +u log π and mixes an
  online critic into the minimum; this follows eq. 11.5 and the paper (−α log π, both targets);
- actor minimises E[α log π(ã|s) - min_i Q_ψi(s, ã)] (eq. 11.7);
- temperature: fixed α (`autotune=false`), or α = exp(log α) tuned by gradient descent on
  -log α (log π(ã|s) + H̄) toward the target entropy H̄ = -|A| (2018b, §5; the book's closing
  note on an adaptive entropy multiplier), with its own optimizer and `alpha_lr`.
Discrete action spaces are refused by `check_spaces`.
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import torch
from torch import Tensor, nn

from rlrun.algos._offpolicy import (
    ContinuousLearner,
    ReplayLoop,
    gradient_step,
    optimizer_with_lr,
    require_continuous_actions,
)
from rlrun.algos.configs import SACConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.replay import ReplayBatch
from rlrun.envs.factory import VecEnv
from rlrun.networks.continuous import QEnsemble, TanhGaussianActor
from rlrun.ops.td import critic_regression_loss, td_target
from rlrun.run.facade import Run, Stateful, TrainResult
from rlrun.training.targets import TargetSync


def critic_loss(
    q: Tensor, next_q: Tensor, next_logprobs: Tensor, rewards: Tensor, terminations: Tensor, gamma: float, alpha: Tensor
) -> Tensor:
    """Both critics' squared error (`q`, [2, B]) to the soft Bellman target (eq. 11.5)
    y = r + γ (1 - terminated) (min_i Q_ψi'(s', a') - α log π(a'|s')), with `next_q` [2, B] the
    target critics' values of a' ~ π(·|s') and `next_logprobs` [B] its log-probabilities."""
    soft_value = next_q.min(0).values - alpha * next_logprobs
    return critic_regression_loss(q, td_target(rewards, soft_value, terminations, gamma))


def actor_loss(logprobs: Tensor, q: Tensor, alpha: Tensor) -> Tensor:
    """mean(α log π(ã|s) - min_i Q_ψi(s, ã)) over the batch, ã ~ π(·|s) reparameterised
    (eq. 11.7; `q` [2, B], `logprobs` [B])."""
    return (alpha * logprobs - q.min(0).values).mean()


def temperature_loss(log_alpha: Tensor, logprobs: Tensor, target_entropy: float) -> Tensor:
    """-log α (mean log π(ã|s) + H̄), whose descent moves the entropy toward H̄ (2018b, §5)."""
    return -log_alpha * (logprobs.mean() + target_entropy)


class Temperature(nn.Module):
    """The entropy temperature α = exp(log α), learnable or fixed."""

    def __init__(self, alpha: float, learnable: bool) -> None:
        super().__init__()
        log_alpha = math.log(alpha) if alpha > 0 else -math.inf
        self.log_alpha = nn.Parameter(torch.tensor(log_alpha), requires_grad=learnable)


class SACLearner(ContinuousLearner):
    """Squashed Gaussian actor, twin critics with target copies, and the temperature."""

    def __init__(self, cfg: TrainConfig, envs: VecEnv, device: torch.device) -> None:
        algo: SACConfig = cfg.algo
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        super().__init__(action_space, envs.num_envs, algo.learning_starts, device)
        self.gamma, self.tau = algo.gamma, algo.tau
        self.actor = TanhGaussianActor(cfg.network, obs_space, action_space).to(device)
        self.critic = QEnsemble(cfg.network, obs_space, action_space, num_critics=2).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_sync = TargetSync(self.critic_target, self.critic)
        initial_alpha = algo.alpha_init if algo.autotune else algo.alpha
        self.temperature = Temperature(initial_alpha, learnable=algo.autotune).to(device)
        self.target_entropy = (
            -float(action_space.shape[0]) if algo.target_entropy is None else algo.target_entropy
        )
        self.actor_params = list(self.actor.parameters())
        self.actor_optimizer = optimizer_with_lr(self.actor_params, cfg.optimizer, algo.actor_lr)
        self.critic_optimizer = optimizer_with_lr(self.critic.parameters(), cfg.optimizer, algo.critic_lr)
        self.optimizers = [self.actor_optimizer, self.critic_optimizer]
        self.alpha_optimizer = None
        if algo.autotune:
            self.alpha_optimizer = optimizer_with_lr(
                self.temperature.parameters(), cfg.optimizer, algo.alpha_lr
            )
            self.optimizers.append(self.alpha_optimizer)

    def tracked(self) -> dict[str, Stateful]:
        tracked = {
            "actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
            "temperature": self.temperature, "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
        }
        if self.alpha_optimizer is not None:
            tracked["alpha_optimizer"] = self.alpha_optimizer
        return tracked

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.dist(obs).rsample()[0]

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        """One step of Alg. 11.1 on `batch`: the critics, the actor, the temperature (when tuned),
        then the target critics."""
        log_alpha = self.temperature.log_alpha
        alpha = log_alpha.detach().exp()
        with torch.no_grad():
            next_actions, next_logprobs = self.actor.dist(batch.next_obs).rsample()
            next_q = self.critic_target(batch.next_obs, next_actions)
        q = self.critic(batch.obs, batch.actions)
        loss = critic_loss(q, next_q, next_logprobs, batch.rewards, batch.terminations, self.gamma, alpha)
        stats = {"critic_loss": gradient_step(self.critic_optimizer, loss), "q_mean": q.detach().mean()}

        actions, logprobs = self.actor.dist(batch.obs).rsample()
        loss = actor_loss(logprobs, self.critic(batch.obs, actions), alpha)
        stats["actor_loss"] = gradient_step(self.actor_optimizer, loss, self.actor_params)
        logprobs = logprobs.detach()
        stats.update(alpha=alpha, entropy=-logprobs.mean())
        if self.alpha_optimizer is not None:
            loss = temperature_loss(log_alpha, logprobs, self.target_entropy)
            stats["alpha_loss"] = gradient_step(self.alpha_optimizer, loss)
        self.critic_sync.soft(self.tau)
        return stats


check_spaces = require_continuous_actions("sac")


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> TanhGaussianActor:
    return TanhGaussianActor(cfg.network, obs_space, action_space)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    loop = ReplayLoop(cfg, run)
    learner = SACLearner(cfg, loop.envs, run.device)
    for batch in loop.batches(learner):
        loop.record(learner.update(batch))
    return loop.finish(learner.policy)


SPEC = AlgoSpec(
    name="sac", config=SACConfig, train=train, make_policy=make_policy, policy_key="actor",
    check_spaces=check_spaces,
    replay=True,
)
