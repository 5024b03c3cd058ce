"""Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016).

Follows book ch. 3.6: the policy gradient of eq. 3.29 with Φ_t the bootstrapped advantage of
eqs. 3.32-3.33 (k-step returns minus the baseline V_ψ(s_t)), Alg. 3.3 with rewards-to-go
replaced by bootstrapped n-step returns; the critic regresses on those returns (eq. 3.31).
Rollouts of `num_steps` steps from every vector env (the k of eq. 3.32 is at most
`num_steps`), advantages by GAE(γ, λ) (book ch. 5; λ = 1 gives the n-step returns of
eq. 3.28 minus V_ψ(s_t)), one gradient step per rollout on `a2c_loss`,
-mean(log π · A) + vf_coef · mean((V - R)²) - ent_coef · H. Defaults follow Stable-Baselines3's
A2C; its RMSprop (α 0.99, eps 1e-5: OptimizerConfig's defaults) is picked by `conf/algo/a2c.yaml`
in every family (`optimizer=<name>` overrides it), its lr 7e-4 set by the presets
`conf/preset/a2c_*.yaml` (families without a preset keep the optimizer's default lr).
"""

from __future__ import annotations

import torch

from rlrun.algos._rollouts import RolloutLoop, make_policy
from rlrun.algos.configs import A2CConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.ops.policy_gradient import score_function_loss, squared_error
from rlrun.ops.returns import explained_variance, standardize
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import FlatOptimizer, make_optimizer
from rlrun.training.steps import gradient_step


def a2c_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor | None,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -mean(log π · A) + c_v mean((V - R)²) - c_e mean(H) and its parts.

    Args:
        logprobs: log π(a_t|s_t) of the taken actions, with gradient, shape [B].
        advantages: A_t (already weighted and normalised as wanted, no gradient), shape [B].
        new_values: V(s_t) with gradient, shape [B]; None when there is no critic to train.
        returns: the critic's regression targets, shape [B].
        entropy: policy entropy per state, shape [B].
        vf_coef: value loss coefficient c_v.
        ent_coef: entropy bonus coefficient c_e.
    """
    policy_loss = score_function_loss(logprobs, advantages)
    entropy_mean = entropy.mean()
    loss = with_entropy_bonus(policy_loss, entropy_mean, ent_coef)
    stats = {"policy_loss": policy_loss.detach(), "entropy": entropy_mean.detach()}
    if new_values is not None:
        value_loss = squared_error(new_values, returns)
        loss = loss + vf_coef * value_loss
        stats["value_loss"] = value_loss.detach()
    return loss, stats


def actor_critic_step(
    agent: ActorCritic,
    optimizer: FlatOptimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    *,
    vf_coef: float,
    ent_coef: float,
    max_grad_norm: float,
    norm_adv: bool,
    weights: torch.Tensor | None = None,
) -> dict[str, float]:
    """One gradient step on `a2c_loss` over a whole flat batch; returns `train/` metrics.

    Advantages are normalised first (if `norm_adv`), then multiplied by `weights` (if given).
    The critic is trained only when `vf_coef` > 0. `old_values` are the critic's predictions
    used to form the advantages (for the explained variance of the targets).
    """
    train_critic = vf_coef > 0
    if norm_adv:
        advantages = standardize(advantages)
    if weights is not None:
        advantages = weights * advantages
    dist, new_values = agent.dist_and_value(obs) if train_critic else (agent.dist(obs), None)
    loss, stats = a2c_loss(dist.log_prob(actions), advantages, new_values, returns, dist.entropy(),
                           vf_coef, ent_coef)
    grad_norm = float(gradient_step(optimizer, loss, max_grad_norm))
    metrics = {f"train/{key}": float(value) for key, value in stats.items()}
    metrics["train/grad_norm"] = grad_norm
    if train_critic:
        metrics["train/explained_variance"] = explained_variance(old_values, returns)
    return metrics


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: A2CConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    loop = RolloutLoop(cfg, run, envs, agent, optimizer)
    for buffer, metrics in loop:
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        metrics.update(actor_critic_step(
            agent, optimizer, batch.obs, batch.actions, batch.advantages, batch.returns,
            batch.values, vf_coef=algo.vf_coef, ent_coef=algo.ent_coef,
            max_grad_norm=algo.max_grad_norm, norm_adv=algo.norm_adv,
        ))
    return loop.finish()


SPEC = AlgoSpec(name="a2c", config=A2CConfig, train=train, make_policy=make_policy, policy_key="agent")
