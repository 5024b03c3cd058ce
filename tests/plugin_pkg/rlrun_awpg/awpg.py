"""Advantage-weighted policy gradient: log-likelihood of the taken actions weighted by exp(A/β).

The actor maximises mean(w_t log π(a_t|s_t)) with w_t = min(exp(Â_t / β), w_max), Â_t the
rollout's GAE advantages standardised to zero mean and unit std (the weighting of AWR, Peng et
al. 2019, applied to fresh on-policy rollouts); the critic regresses on the GAE returns in the
same gradient step. One gradient step per rollout of `num_steps` steps from every env.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from rlrun.plugin import (
    ActorCritic,
    AlgoConfig,
    AlgoSpec,
    Batch,
    RolloutBuffer,
    Run,
    TrainConfig,
    TrainResult,
    anneal_lr,
    check,
    check_discount,
    collect_rollout,
    explained_variance,
    make_optimizer,
    standardize,
)


@dataclass
class AWPGConfig(AlgoConfig):
    name: str = "awpg"
    num_steps: int = 16
    """Rollout length per environment between updates (env steps)."""
    gamma: float = 0.99
    """Discount factor per env step."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    temperature: float = 1.0
    """β of the weights exp(Â/β) (standardised advantage units); lower favours the best actions."""
    max_weight: float = 20.0
    """Cap w_max of each weight (ratio, >= 1)."""
    vf_coef: float = 0.5
    """Value loss coefficient (loss units per squared return unit)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.temperature > 0, f"algo.temperature={self.temperature} must be > 0; e.g. 1.0")
        check(self.max_weight >= 1, f"algo.max_weight={self.max_weight} must be >= 1")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


def awpg_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    returns: torch.Tensor,
    algo: AWPGConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """-mean(w log π) + vf_coef mean((V - R)²), w = min(exp(standardised A / β), w_max)."""
    weights = torch.exp(standardize(advantages) / algo.temperature).clamp(max=algo.max_weight)
    policy_loss = -(weights * logprobs).mean()
    value_loss = (new_values - returns).square().mean()
    stats = {"train/policy_loss": policy_loss.item(), "train/value_loss": value_loss.item(),
             "train/mean_weight": weights.mean().item()}
    return policy_loss + algo.vf_coef * value_loss, stats


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return ActorCritic(cfg.network, obs_space, action_space)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: AWPGConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space)
    agent = agent.to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    global_step = run.restore()
    buffer = RolloutBuffer(algo.num_steps, envs.num_envs, envs.single_observation_space,
                           envs.single_action_space, run.device)
    obs = envs.reset(seed=run.env_seed)
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        obs = collect_rollout(agent, envs, buffer, obs, run.record_episodes, cfg.numpy_acting)
        global_step += buffer.batch_size
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        dist, new_values = agent.dist_and_value(batch.obs)
        loss, metrics = awpg_loss(dist.log_prob(batch.actions), batch.advantages, new_values,
                                  batch.returns, algo)
        optimizer.zero_grad()
        loss.backward()
        metrics["train/grad_norm"] = float(optimizer.clip_grad_norm(algo.max_grad_norm))
        optimizer.step()
        metrics["train/explained_variance"] = explained_variance(batch.values, batch.returns)
        run.log({**metrics, "train/lr": lr}, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)


SPEC = AlgoSpec(name="awpg", config=AWPGConfig, train=train, make_policy=make_policy,
                policy_key="agent")
