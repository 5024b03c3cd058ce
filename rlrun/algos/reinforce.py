"""REINFORCE: Monte Carlo policy gradient over whole episodes (Williams 1992).

Follows book ch. 3.2-3.5 and the lecture "Policy Gradient" (tricks: log derivative, causality
/ reward to go, baseline subtraction):
- `reward_to_go=false`: Alg. 3.1, eq. 3.9, every step of an episode is weighted by the whole
  episode's return G(τ) = Σ_k γ^k r_k;
- `reward_to_go=true`: Alg. 3.2, eqs. 3.25-3.26, step t is weighted by its reward-to-go
  G_t = Σ_{l≥t} γ^{l-t} r_l (discounted from t, the form of eq. 3.28);
- `baseline=true`: eqs. 3.29-3.30 with b(s_t) = -V_ψ(s_t), Φ_t = G_t - V_ψ(s_t) (the lecture's
  "Baseline Subtraction"); as in Alg. 3.3, after the policy step the critic takes `value_steps`
  gradient steps of its own optimizer on the regression loss (V_ψ(s_t) - G_t)² (eq. 3.31, Monte
  Carlo target).
A batch is `episodes_per_batch` whole episodes (a per-env quota, see `rlrun.data.episodes`),
one gradient step per batch on the mean over its steps. Time-limit truncation ends an episode;
without a baseline its return is what was observed, with a baseline the reward of the last
step is bootstrapped with γ V_ψ(final observation), since the episode would have gone on.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from rlrun.algos._rollouts import make_policy
from rlrun.algos.configs import ReinforceConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import ConfigError, TrainConfig
from rlrun.data.episodes import EpisodeBatch, collect_episodes, episode_quotas
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.ops.policy_gradient import score_function_loss
from rlrun.ops.returns import discounted_returns, explained_variance, standardize
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import anneal_lr, make_optimizer
from rlrun.training.steps import gradient_step, value_regression_steps


def reinforce_loss(
    logprobs: torch.Tensor, advantages: torch.Tensor, entropy: torch.Tensor, ent_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -mean(log π · Φ) - c_e mean(H) and its parts (eq. 3.29; no critic term: the
    baseline is fitted in steps of its own).

    Args:
        logprobs: log π(a_t|s_t) of the taken actions, with gradient, shape [B].
        advantages: Φ_t, returns or returns minus the baseline (normalised as wanted), shape [B].
        entropy: policy entropy per state, shape [B].
        ent_coef: entropy bonus coefficient c_e.
    """
    policy_loss = score_function_loss(logprobs, advantages)
    entropy_mean = entropy.mean()
    loss = with_entropy_bonus(policy_loss, entropy_mean, ent_coef)
    return loss, {"policy_loss": policy_loss.detach(), "entropy": entropy_mean.detach()}


def episode_start_returns(returns: torch.Tensor, episode_ends: torch.Tensor) -> torch.Tensor:
    """Broadcast each episode's first return G_0 = G(τ) to all its steps (time-major [T, N])."""
    whole = torch.empty_like(returns)
    running = returns[0]
    for t in range(returns.shape[0]):
        if t > 0:
            starts = episode_ends[t - 1].bool()
            running = torch.where(starts, returns[t], running)
        whole[t] = running
    return whole


def batch_returns(
    batch: EpisodeBatch, gamma: float, reward_to_go: bool, final_values: list[torch.Tensor] | None
) -> torch.Tensor:
    """Φ targets per step, [T, N]: rewards-to-go or whole-episode returns.

    `final_values` (one tensor per entry of `batch.truncated`) bootstraps truncated episodes.
    """
    rewards = batch.rewards.clone()
    if final_values is not None:
        for (t, rows, _), values in zip(batch.truncated, final_values):
            rewards[t, torch.as_tensor(rows, device=rewards.device)] += gamma * values
    returns = discounted_returns(rewards, batch.episode_ends, gamma)
    return returns if reward_to_go else episode_start_returns(returns, batch.episode_ends)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: ReinforceConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    if algo.episodes_per_batch < envs.num_envs:
        raise ConfigError(
            f"algo.episodes_per_batch={algo.episodes_per_batch} is less than env.num_envs={envs.num_envs}: "
            "envs without an episode would only waste steps; raise algo.episodes_per_batch or lower env.num_envs"
        )
    if algo.baseline and cfg.network.shared:
        raise ConfigError("algo=reinforce fits its baseline with a separate critic optimizer; use network.shared=false")
    quotas = episode_quotas(algo.episodes_per_batch, envs.num_envs)
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(run.device)
    optimizer = make_optimizer([*agent.actor_torso.parameters(), *agent.policy_head.parameters()], cfg.optimizer)
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    if algo.baseline:
        value_optimizer_cfg = replace(cfg.optimizer, lr=algo.value_lr or cfg.optimizer.lr)
        value_optimizer = make_optimizer([*agent.critic_torso.parameters(), *agent.value_head.parameters()],
                                         value_optimizer_cfg)
        run.track(value_optimizer=value_optimizer)
    global_step = run.restore()
    obs = torch.as_tensor(envs.reset(seed=run.env_seed), device=run.device)
    sample = lambda obs: agent.dist(obs).sample()
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        if algo.baseline:
            anneal_lr(value_optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        batch, obs = collect_episodes(sample, envs, obs, quotas, run.record_episodes, run.device)
        global_step += batch.num_steps
        valid = batch.valid
        b_obs, b_actions = batch.obs[valid], batch.actions[valid]
        with torch.no_grad():
            final_values = [agent.value(obs) for _, _, obs in batch.truncated] if algo.baseline else None
            b_returns = batch_returns(batch, algo.gamma, algo.reward_to_go, final_values)[valid]
            b_values = agent.value(b_obs) if algo.baseline else torch.zeros_like(b_returns)
        advantages = b_returns - b_values
        if algo.norm_adv:
            advantages = standardize(advantages)
        dist = agent.dist(b_obs)
        loss, stats = reinforce_loss(dist.log_prob(b_actions), advantages, dist.entropy(),
                                     algo.ent_coef)
        grad_norm = float(gradient_step(optimizer, loss, algo.max_grad_norm))
        metrics = {f"train/{key}": float(value) for key, value in stats.items()}
        metrics["train/grad_norm"] = grad_norm
        if algo.baseline:
            metrics.update(value_regression_steps(agent, value_optimizer, b_obs, b_returns, algo.value_steps,
                                                  algo.max_grad_norm))
            metrics["train/explained_variance"] = explained_variance(b_values, b_returns)
        metrics.update({"train/lr": lr, "train/batch_steps": float(batch.num_steps)})
        run.log(metrics, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)


SPEC = AlgoSpec(name="reinforce", config=ReinforceConfig, train=train, make_policy=make_policy,
                policy_key="agent")
