"""Proximal Policy Optimization with the clipped surrogate (Schulman et al. 2017).

Follows book ch. 8, Alg. 8.1, and the lecture "Proximal Policy Optimization 1/2":
- clipped surrogate L^CLIP = E_t[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)], ρ_t = π_θ(a_t|s_t) / π_old(a_t|s_t);
- advantages by GAE(γ, λ) (book ch. 5), normalised per minibatch;
- value loss (optionally clipped around the old values), entropy bonus, global grad-norm clip;
- optional KL early stop (Alg. 8.1): each minibatch's approximate KL to the old policy,
  E[(ρ - 1) - log ρ] (Schulman's unbiased k3 estimator), is measured in its forward pass; the
  first minibatch whose KL exceeds `target_kl` is not stepped and the update ends there.
Implementation details from the advanced lecture (Engstrom et al. 2020): orthogonal init,
observation/reward normalisation, linear learning-rate annealing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlrun.algos._ppo_family import (
    check_minibatches,
    compiled,
    minibatch_stepper,
    update_metrics,
)
from rlrun.algos._rollouts import RolloutLoop, make_policy
from rlrun.algos.configs import PPOConfig, PPOFamilyConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.clipped import clipped_surrogate, clipped_value_loss
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.run.facade import Run, TrainResult
from rlrun.training.minibatches import shuffled_minibatches
from rlrun.training.optim import FlatOptimizer, make_optimizer


def ppo_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    *,
    clip_coef: float,
    value_clip: float | None,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -L^CLIP + c_v L^V - c_e H and its parts (advantages already normalised).

    L^V is the value loss clipped within `value_clip` of the old values (None: unclipped).
    """
    policy_loss, stats = clipped_surrogate(new_logprobs, old_logprobs, advantages, clip_coef)
    value_loss = clipped_value_loss(new_values, old_values, returns, value_clip)
    entropy_mean = entropy.mean()
    loss = with_entropy_bonus(policy_loss + vf_coef * value_loss, entropy_mean, ent_coef)
    stats.update(value_loss=value_loss.detach(), entropy=entropy_mean.detach())
    return loss, stats


def minibatch_loss(
    agent: ActorCritic,
    mb: Batch,
    clip_coef: float,
    value_clip: float | None,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The forward pass of minibatch `mb` and its `ppo_loss` (what `compile=true` compiles)."""
    dist, new_values = agent.dist_and_value(mb.obs)
    return ppo_loss(dist.log_prob(mb.actions), mb.logprobs, mb.advantages, new_values, mb.values,
                    mb.returns, dist.entropy(), clip_coef=clip_coef, value_clip=value_clip,
                    vf_coef=vf_coef, ent_coef=ent_coef)


def update(
    agent: ActorCritic,
    optimizer: FlatOptimizer,
    batch: Batch,
    algo: PPOFamilyConfig,
    forward_and_loss: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]] = minibatch_loss,
) -> dict[str, float]:
    """Epochs of shuffled minibatch steps on PPO's loss, with the KL early stop; `forward_and_loss`
    is `minibatch_loss` or its compiled form. Returns the `train/` metrics of `update_metrics`."""
    value_clip = algo.clip_coef if algo.clip_vloss else None
    steps = minibatch_stepper(optimizer, algo)
    for mb in shuffled_minibatches(batch, steps, algo.norm_adv):
        loss, stats = forward_and_loss(agent, mb, algo.clip_coef, value_clip, algo.vf_coef,
                                       algo.ent_coef)
        steps.step(loss, stats)
    return update_metrics(steps, batch)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: PPOConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    check_minibatches(algo, envs.num_envs * algo.num_steps)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    loop = RolloutLoop(cfg, run, envs, agent, optimizer)
    forward_and_loss = compiled(minibatch_loss) if cfg.compile else minibatch_loss
    for buffer, metrics in loop:
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        metrics.update(update(agent, optimizer, batch, algo, forward_and_loss))
    return loop.finish()


SPEC = AlgoSpec(name="ppo", config=PPOConfig, train=train, make_policy=make_policy, policy_key="agent",
                compiles=True)
