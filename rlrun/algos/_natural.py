"""Shared parts of the natural-gradient methods: NPG (`rlrun.algos.npg`) and TRPO (`rlrun.algos.trpo`).

Both follow the same iteration of the book (Alg. 6.1, Alg. 7.1): collect a batch with the
current policy, estimate GAE advantages (ch. 5), take one natural-gradient step of the policy
inside a KL radius δ, then fit the value function separately with several epochs of minibatch
regression on the returns. This module holds what the two share:

- `NaturalPGConfig` (in `rlrun.algos.configs`): the common config fields (rollout, GAE, KL
  radius δ, conjugate gradient, damping, value fitting);
- `PolicyObjective`: closures over a policy and a batch for the surrogate
  L(θ') = E[π_θ'(a|s) / π_θ(a|s) · Â] (eq. 7.38, 7.41; at θ' = θ its gradient is the policy
  gradient ĝ of Alg. 6.1, eq. 7.39), the mean KL(π_θ || π_θ') (eq. 7.41) and the log-likelihoods
  log π_θ'(a_i|s_i) whose scores give the sampled Fisher matrix (eq. 6.3);
- `fisher_product`: the Fisher-vector product F v, by the KL-Hessian trick (section 7.8.2,
  eqs. 7.62-7.63) or by the score outer products of eq. 6.3 (matrix-free);
- `natural_step`: the natural direction x = F⁻¹ĝ by conjugate gradient (eq. 7.49, App. B) scaled
  by η = sqrt(2δ / xᵀFx) (eqs. 6.7, 7.50);
- `fit_value`: the value regression of Alg. 7.1 (squared error to the returns, Adam);
- the actor/critic parameter split of `ActorCritic` (the policy step touches only the actor);
- `train_loop`: the iteration itself, given each algorithm's policy update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import gymnasium as gym
import torch
from torch import Tensor, nn

from rlrun.algos.configs import NaturalPGConfig
from rlrun.config import ConfigError, TrainConfig
from rlrun.data.batch import Batch
from rlrun.data.rollout import RolloutBuffer, collect_rollout
from rlrun.envs.factory import VecEnv
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.distributions import frozen
from rlrun.ops.returns import explained_variance, standardize
from rlrun.ops.trust_region import (
    MatVec,
    conjugate_gradient,
    fisher_vector_product_from_logprobs,
    kl_hessian_vector_product,
    natural_step_size,
    surrogate,
)
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import FlatOptimizer, anneal_lr, make_optimizer


def policy_parameters(agent: ActorCritic) -> list[nn.Parameter]:
    """θ: the actor torso and the policy head (with the Gaussian log-std)."""
    return [*agent.actor_torso.parameters(), *agent.policy_head.parameters()]


def critic_parameters(agent: ActorCritic) -> list[nn.Parameter]:
    """ψ: the critic torso and the value head."""
    return [*agent.critic_torso.parameters(), *agent.value_head.parameters()]


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    """The acting network: an `ActorCritic` (separate actor and critic)."""
    return ActorCritic(cfg.network, obs_space, action_space)


@dataclass
class Learner:
    """What a natural-gradient run builds before its loop (nothing tracked or restored yet)."""

    envs: VecEnv
    agent: ActorCritic
    value_optimizer: FlatOptimizer
    buffer: RolloutBuffer


def make_learner(cfg: TrainConfig, run: Run) -> Learner:
    """Envs, separate actor and critic, the value optimizer (lr `algo.vf_lr`) and rollout storage."""
    algo: NaturalPGConfig = cfg.algo
    if cfg.network.shared:
        raise ConfigError(
            f"algo={algo.name} steps the policy and fits the value function separately, so it needs "
            "separate networks; use network.shared=false"
        )
    envs = run.make_envs(gamma=algo.gamma)
    batch_size = envs.num_envs * algo.num_steps
    if batch_size < algo.vf_minibatches:
        raise ConfigError(
            f"algo.vf_minibatches={algo.vf_minibatches} exceeds the rollout batch of {batch_size} "
            "(env.num_envs * algo.num_steps); lower algo.vf_minibatches"
        )
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    value_optimizer = make_optimizer(critic_parameters(agent), replace(cfg.optimizer, lr=algo.vf_lr))
    buffer = RolloutBuffer(algo.num_steps, envs.num_envs, envs.single_observation_space,
                           envs.single_action_space, run.device)
    return Learner(envs, agent, value_optimizer, buffer)


class PolicyObjective:
    """Surrogate, KL and log-likelihood of the current policy on one batch, old policy frozen now.

    The old policy π_θ (its distribution on `obs` and the log-probabilities of `actions`) is
    computed once without gradient at construction, as Alg. 7.1 requires; every method then
    evaluates the policy at its current parameters θ'.
    """

    def __init__(self, agent: ActorCritic, obs: Tensor, actions: Tensor, advantages: Tensor) -> None:
        self.agent, self.obs, self.actions, self.advantages = agent, obs, actions, advantages
        with torch.no_grad():
            self.old_dist = frozen(agent.dist(obs))
            self.old_logprobs = self.old_dist.log_prob(actions)
            self.old_surrogate = float(advantages.mean())  # L at θ' = θ: every ratio is 1

    @classmethod
    def from_batch(cls, agent: ActorCritic, batch: Batch, norm_adv: bool) -> PolicyObjective:
        advantages = standardize(batch.advantages) if norm_adv else batch.advantages
        return cls(agent, batch.obs, batch.actions, advantages)

    def logprobs(self) -> Tensor:
        """log π_θ'(a_i|s_i) of the batch actions, shape [N] (the scores of eq. 6.3 are their gradients)."""
        return self.agent.dist(self.obs).log_prob(self.actions)

    def surrogate(self) -> Tensor:
        """L(θ') = mean_i ρ_i Â_i with ρ_i = π_θ'(a_i|s_i) / π_θ(a_i|s_i) (eq. 7.41)."""
        return surrogate(self.logprobs(), self.old_logprobs, self.advantages)

    def kl(self) -> Tensor:
        """Mean KL(π_θ(·|s_i) || π_θ'(·|s_i)) over the batch states (the constraint of eq. 7.41)."""
        return self.old_dist.kl(self.agent.dist(self.obs)).mean()

    @torch.no_grad()
    def improvement_and_kl(self) -> tuple[float, float]:
        """(L(θ') - L(θ), mean KL) at the current parameters, from one forward pass."""
        dist = self.agent.dist(self.obs)
        value = float(surrogate(dist.log_prob(self.actions), self.old_logprobs, self.advantages))
        return value - self.old_surrogate, float(self.old_dist.kl(dist).mean())


def fisher_product(
    kind: str, objective: PolicyObjective, params: list[nn.Parameter], damping: float
) -> MatVec:
    """v -> (F + λI) v at the current parameters.

    `kl_hessian`: the Hessian of the mean KL (book section 7.8.2, eqs. 7.62-7.63), exact average
    Fisher over the batch states. `fisher`: the sampled score outer products
    (1/N) Σ ∇log π(a_i|s_i) ∇log π(a_i|s_i)ᵀ of eq. 6.3 (Alg. 6.1), equal to the former only in
    expectation over the sampled actions.
    """
    if kind == "kl_hessian":
        return kl_hessian_vector_product(objective.kl, params, damping)
    return fisher_vector_product_from_logprobs(objective.logprobs, params, damping)


@dataclass
class NaturalStep:
    """The natural-gradient step of one update (eqs. 6.7, 7.46, 7.50)."""

    full_step: Tensor
    """η x with x ≈ (F + λI)⁻¹ g and η = sqrt(2δ / xᵀ(F + λI)x)."""
    gradient: Tensor
    """g, the surrogate gradient at the old parameters (the policy gradient, eq. 7.39)."""
    step_size: float
    """η (parameter units per unit of x)."""


def natural_step(gradient: Tensor, fvp: MatVec, max_kl: float, cg_iters: int) -> NaturalStep:
    """Solve (F + λI) x = g by conjugate gradient (eq. 7.49, App. B) and scale x to the KL radius."""
    direction = conjugate_gradient(fvp, gradient, cg_iters)
    step_size = natural_step_size(direction, fvp(direction), max_kl)
    return NaturalStep(step_size * direction, gradient, step_size)


def fit_value(
    agent: ActorCritic, optimizer: FlatOptimizer, batch: Batch, epochs: int, minibatches: int
) -> float:
    """Regress V_ψ(s_t) on the returns with epochs of shuffled minibatches (Alg. 7.1's inner loop).

    Returns the mean squared error over the last epoch.
    """
    batch_size = len(batch.returns)
    minibatch_size = batch_size // minibatches
    for _ in range(epochs):
        permutation = torch.randperm(batch_size, device=batch.returns.device)
        loss_sum, count = 0.0, 0
        for start in range(0, batch_size - minibatch_size + 1, minibatch_size):
            mb = permutation[start : start + minibatch_size]
            loss = (agent.value(batch.obs[mb]) - batch.returns[mb]).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum, count = loss_sum + loss.detach(), count + 1
    return float(loss_sum) / count


def value_update(cfg: TrainConfig, learner: Learner, batch: Batch, global_step: int) -> dict[str, float]:
    """Fit the critic on `batch` at the scheduled `algo.vf_lr`; returns its `train/` metrics."""
    algo: NaturalPGConfig = cfg.algo
    lr = anneal_lr(learner.value_optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
    value_loss = fit_value(learner.agent, learner.value_optimizer, batch, algo.vf_epochs, algo.vf_minibatches)
    return {
        "train/value_loss": value_loss,
        "train/explained_variance": explained_variance(batch.values, batch.returns),
        "train/vf_lr": lr,
    }


def policy_metrics(objective: PolicyObjective, step: NaturalStep) -> dict[str, float]:
    """Diagnostics of a policy step: entropy before it, gradient norm, η, and KL/improvement reached."""
    improvement, kl = objective.improvement_and_kl()
    return {
        "train/entropy": float(objective.old_dist.entropy().mean()),
        "train/grad_norm": float(step.gradient.norm()),
        "train/step_size": step.step_size,
        "train/kl": kl,
        "train/surrogate_improvement": improvement,
    }


PolicyUpdate = Callable[[ActorCritic, Batch], dict[str, float]]


def train_loop(cfg: TrainConfig, run: Run, learner: Learner, policy_update: PolicyUpdate) -> TrainResult:
    """Alg. 6.1 / 7.1: collect, advantages, one policy update, value fit, log; resumable through `run`."""
    algo: NaturalPGConfig = cfg.algo
    envs, agent, buffer = learner.envs, learner.agent, learner.buffer
    run.track(agent=agent, value_optimizer=learner.value_optimizer, envs=envs)
    global_step = run.restore()
    obs = envs.reset(seed=run.env_seed)
    while global_step < cfg.total_timesteps and not run.should_stop:
        obs = collect_rollout(agent, envs, buffer, obs, run.record_episodes, cfg.numpy_acting)
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        metrics = policy_update(agent, batch)
        metrics.update(value_update(cfg, learner, batch, global_step))
        global_step += buffer.batch_size
        run.log(metrics, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)
