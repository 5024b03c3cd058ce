"""Proximal Policy Optimization with the adaptive KL penalty (Schulman et al. 2017, section 4).

Follows the lecture "Proximal Policy Optimization" (Lecture 9; see docs/sources.md)
and the book's ch. 8 (PPO optimises the constrained surrogate of eq. 7.41 by minibatch SGD):
- penalised surrogate L^KLPEN = E_t[ρ_t Â_t] - β E_t[KL(π_old(·|s_t) || π_θ(·|s_t))],
  ρ_t = π_θ(a_t|s_t) / π_old(a_t|s_t), with the exact KL of the two action distributions;
- `num_epochs` epochs of shuffled minibatches on -L^KLPEN + c_v L^V - c_e H (the minibatch loop,
  advantage normalisation, grad-norm clip and the optional early stop at `target_kl`, Alg. 8.1,
  are the PPO family's `rlrun.training.minibatches`, driven by `update` below);
- after each update phase d = E_t[KL(π_old || π_θ)] over the whole batch, then
  β ← β/2 if d < d_targ/1.5, β ← 2β if d > 1.5 d_targ (lecture; `halve_or_double_kl_coef`),
  d_targ = `kl_target`; β starts at `beta_init` and is checkpointed;
- advantages by GAE(γ, λ) (book ch. 5). `clip_coef` only bounds the value update here (with
  `clip_vloss`); the policy ratio is not clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlrun.algos._ppo_family import (
    check_minibatches,
    minibatch_stepper,
    update_metrics,
)
from rlrun.algos._rollouts import RolloutLoop, make_policy
from rlrun.algos.configs import PPOKLConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.clipped import clipped_value_loss
from rlrun.ops.distributions import Distribution, frozen
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.run.facade import Run, Scalars, TrainResult
from rlrun.training.minibatches import shuffled_minibatches
from rlrun.training.optim import FlatOptimizer, make_optimizer


def halve_or_double_kl_coef(beta: float, kl: float, kl_target: float) -> float:
    """The lecture's rule: β/2 if kl < kl_target/1.5, 2β if kl > 1.5 kl_target, else β."""
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > kl_target * 1.5:
        return beta * 2.0
    return beta


def kl_penalty_loss(
    dist: Distribution,
    old_dist: Distribution,
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    *,
    beta: float,
    value_clip: float | None,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -E[ρA] + β E[KL(old || new)] + c_v L^V - c_e H and its parts.

    L^V is the value loss clipped within `value_clip` of the old values (None: unclipped).
    """
    ratio = (new_logprobs - old_logprobs).exp()
    surrogate = (ratio * advantages).mean()
    kl = old_dist.kl(dist).mean()
    policy_loss = -surrogate + beta * kl
    value_loss = clipped_value_loss(new_values, old_values, returns, value_clip)
    entropy = dist.entropy().mean()
    loss = with_entropy_bonus(policy_loss + vf_coef * value_loss, entropy, ent_coef)
    stats = {
        "policy_loss": policy_loss.detach(),
        "surrogate": surrogate.detach(),
        "value_loss": value_loss.detach(),
        "entropy": entropy.detach(),
        "approx_kl": kl.detach(),  # the minibatch KL before its step: drives the target_kl stop
    }
    return loss, stats


@dataclass
class KLBatch(Batch):
    """A rollout batch with the old policy's distribution of every row (shuffled alongside)."""

    old_dist: Distribution | None = None


def update(
    agent: ActorCritic, optimizer: FlatOptimizer, batch: KLBatch, algo: PPOKLConfig, beta: float
) -> dict[str, float]:
    """Epochs of shuffled minibatch steps on the KL-penalty loss with coefficient `beta`."""
    value_clip = algo.clip_coef if algo.clip_vloss else None
    steps = minibatch_stepper(optimizer, algo)
    for mb in shuffled_minibatches(batch, steps, algo.norm_adv):
        dist, new_values = agent.dist_and_value(mb.obs)
        loss, stats = kl_penalty_loss(dist, mb.old_dist, dist.log_prob(mb.actions), mb.logprobs,
                                      mb.advantages, new_values, mb.values, mb.returns, beta=beta,
                                      value_clip=value_clip, vf_coef=algo.vf_coef,
                                      ent_coef=algo.ent_coef)
        steps.step(loss, stats)
    return update_metrics(steps, batch)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: PPOKLConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    check_minibatches(algo, envs.num_envs * algo.num_steps)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    coefs = Scalars(beta=algo.beta_init)
    run.track(agent=agent, optimizer=optimizer, envs=envs, coefs=coefs)
    loop = RolloutLoop(cfg, run, envs, agent, optimizer)
    for buffer, metrics in loop:
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        with torch.no_grad():
            old_dist = frozen(agent.dist(batch.obs))
        beta = coefs["beta"]
        kl_batch = KLBatch(**vars(batch), old_dist=old_dist)
        metrics.update(update(agent, optimizer, kl_batch, algo, beta))
        with torch.no_grad():
            kl = float(old_dist.kl(agent.dist(batch.obs)).mean())
        coefs["beta"] = halve_or_double_kl_coef(beta, kl, algo.kl_target)
        metrics.update({"train/kl": kl, "train/beta": beta})
    return loop.finish()


SPEC = AlgoSpec(name="ppo_kl", config=PPOKLConfig, train=train, make_policy=make_policy, policy_key="agent")
