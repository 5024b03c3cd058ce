"""Proximal Policy Optimization with the clipped surrogate (Schulman et al. 2017).

Follows book ch. 8, Alg. 8.1, and the lecture "Proximal Policy Optimization 1/2":
- clipped surrogate L^CLIP = E_t[min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)], ρ_t = π_θ(a_t|s_t) / π_old(a_t|s_t);
- advantages by GAE(γ, λ) (book ch. 5), normalised per minibatch;
- value loss (optionally clipped around the old values), entropy bonus, global grad-norm clip;
- optional KL early stop: the epoch loop ends once the approximate KL exceeds `target_kl`
  (Alg. 8.1), with KL estimated by E[(ρ - 1) - log ρ] (Schulman's unbiased k3 estimator).
Implementation details from the advanced lecture (Engstrom et al. 2020): orthogonal init,
observation/reward normalisation, linear learning-rate annealing.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from rlrun.config import AlgoConfig, ConfigError, TrainConfig, check, check_discount
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.optim import clip_grad_norm, make_optimizer, scheduled_lr, set_lr
from rlrun.ops.returns import explained_variance, gae
from rlrun.registry import AlgoSpec
from rlrun.run import Run, TrainResult


@dataclass
class PPOConfig(AlgoConfig):
    name: str = "ppo"
    num_steps: int = 128
    """Rollout length per environment between updates (env steps)."""
    num_epochs: int = 4
    """Passes over each rollout batch (count)."""
    num_minibatches: int = 4
    """Minibatches per epoch (count); minibatch size = num_envs * num_steps / num_minibatches."""
    gamma: float = 0.99
    """Discount factor per env step."""
    gae_lambda: float = 0.95
    """GAE lambda (1 gives Monte Carlo returns minus the baseline)."""
    clip_coef: float = 0.2
    """Policy ratio clip range epsilon (ratio units)."""
    clip_vloss: bool = True
    """Clip value-function updates to clip_coef around the old values."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (loss units per nat)."""
    vf_coef: float = 0.5
    """Value loss coefficient (loss units)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    norm_adv: bool = True
    """Normalise advantages per minibatch to zero mean, unit std."""
    target_kl: float | None = None
    """Stop the epoch loop when approx KL exceeds this (nats); null disables early stop."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check(self.num_epochs >= 1, f"algo.num_epochs={self.num_epochs} must be >= 1")
        check(self.num_minibatches >= 1, f"algo.num_minibatches={self.num_minibatches} must be >= 1")
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.clip_coef > 0, f"algo.clip_coef={self.clip_coef} must be > 0; e.g. algo.clip_coef=0.2")
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")
        check(self.target_kl is None or self.target_kl > 0, f"algo.target_kl={self.target_kl} must be > 0 or null")


def ppo_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    algo: PPOConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss -L^CLIP + c_v L^V - c_e H and its parts (advantages already normalised)."""
    log_ratio = new_logprobs - old_logprobs
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - algo.clip_coef, 1 + algo.clip_coef) * advantages)
    policy_loss = -surrogate.mean()
    value_error = (new_values - returns).square()
    if algo.clip_vloss:
        clipped = old_values + (new_values - old_values).clamp(-algo.clip_coef, algo.clip_coef)
        value_error = torch.max(value_error, (clipped - returns).square())
    value_loss = 0.5 * value_error.mean()
    entropy_mean = entropy.mean()
    loss = policy_loss + algo.vf_coef * value_loss - algo.ent_coef * entropy_mean
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clip_frac": ((ratio - 1).abs() > algo.clip_coef).float().mean(),
        }
    return loss, stats


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return ActorCritic(cfg.network, obs_space, action_space)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: PPOConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    num_envs, num_steps = envs.num_envs, algo.num_steps
    batch_size = num_envs * num_steps
    minibatch_size = batch_size // algo.num_minibatches
    if minibatch_size < 1:
        raise ConfigError(
            f"algo.num_minibatches={algo.num_minibatches} exceeds the rollout batch of {batch_size} "
            f"(env.num_envs * algo.num_steps); lower algo.num_minibatches"
        )
    device = run.device
    agent = make_policy(cfg, envs.single_observation_space, envs.single_action_space).to(device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    params = list(agent.parameters())
    run.track(agent=agent, optimizer=optimizer, envs=envs)
    global_step = run.restore()

    # Rollout storage, time-major [T, N, ...], preallocated on the device.
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
    b_obs = torch.zeros((num_steps, num_envs, *obs_space.shape), dtype=obs_dtype, device=device)
    b_actions = torch.zeros((num_steps, num_envs, *action_space.shape), device=device)
    b_logprobs, b_rewards, b_values, b_terminations, b_episode_ends = (
        torch.zeros((num_steps, num_envs), device=device) for _ in range(5)
    )
    b_next_values = torch.zeros((num_steps, num_envs), device=device)

    obs = torch.as_tensor(envs.reset(seed=run.env_seed), device=device)
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = scheduled_lr(cfg.optimizer, global_step, cfg.total_timesteps)
        set_lr(optimizer, lr)

        # ----- collect a rollout ----------------------------------------------------------
        truncated_rows: list[tuple[int, np.ndarray, np.ndarray]] = []
        with torch.no_grad():
            for t in range(num_steps):
                dist, value = agent.dist_and_value(obs)
                action = dist.sample()
                b_obs[t] = obs
                b_actions[t] = action
                b_logprobs[t] = dist.log_prob(action)
                b_values[t] = value
                step = envs.step(action.cpu().numpy())
                run.record_episodes(step)
                b_rewards[t] = torch.from_numpy(step.rewards)
                b_terminations[t] = torch.from_numpy(step.terminations)
                b_episode_ends[t] = torch.from_numpy(step.terminations | step.truncations)
                truncated = np.flatnonzero(step.truncations & ~step.terminations)
                if len(truncated):
                    truncated_rows.append((t, truncated, step.final_obs[truncated]))
                obs = torch.as_tensor(step.obs, device=device)
            global_step += batch_size

            # V(s_{t+1}): the next row's value, or the value of the real final observation
            # where the episode was truncated (never bootstrapped through a termination).
            b_next_values[:-1] = b_values[1:]
            b_next_values[-1] = agent.value(obs)
            for t, rows, final_obs in truncated_rows:
                b_next_values[t, rows] = agent.value(torch.as_tensor(final_obs, device=device))
            b_advantages, b_returns = gae(
                b_rewards, b_values, b_next_values, b_terminations, b_episode_ends,
                algo.gamma, algo.gae_lambda,
            )

        # ----- update -----------------------------------------------------------------------
        f_obs = b_obs.reshape(batch_size, *obs_space.shape)
        f_actions = b_actions.reshape(batch_size, *action_space.shape)
        f_logprobs, f_advantages = b_logprobs.reshape(-1), b_advantages.reshape(-1)
        f_returns, f_values = b_returns.reshape(-1), b_values.reshape(-1)
        stats_sum: dict[str, torch.Tensor] = {}
        grad_norms: list[float] = []
        updates = 0
        early_stop = False
        for _ in range(algo.num_epochs):
            permutation = torch.randperm(batch_size, device=device)
            for start in range(0, batch_size - minibatch_size + 1, minibatch_size):
                mb = permutation[start : start + minibatch_size]
                dist, new_values = agent.dist_and_value(f_obs[mb])
                mb_advantages = f_advantages[mb]
                if algo.norm_adv and len(mb) > 1:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                loss, stats = ppo_loss(
                    dist.log_prob(f_actions[mb]), f_logprobs[mb], mb_advantages,
                    new_values, f_values[mb], f_returns[mb], dist.entropy(), algo,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norms.append(clip_grad_norm(params, algo.max_grad_norm))
                optimizer.step()
                updates += 1
                for key, value in stats.items():
                    stats_sum[key] = stats_sum.get(key, 0.0) + value
                if algo.target_kl is not None and stats["approx_kl"] > algo.target_kl:
                    early_stop = True
                    break
            if early_stop:
                break

        metrics = {f"train/{key}": float(value) / updates for key, value in stats_sum.items()}
        metrics["train/grad_norm"] = float(np.mean(grad_norms))
        metrics["train/lr"] = lr
        metrics["train/explained_variance"] = explained_variance(f_values, f_returns)
        metrics["train/updates"] = float(updates)
        metrics["train/early_stop"] = float(early_stop)
        run.log(metrics, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)


SPEC = AlgoSpec(name="ppo", config=PPOConfig, train=train, make_policy=make_policy, policy_key="agent")
