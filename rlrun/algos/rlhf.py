"""Reinforcement learning from preferences (Christiano et al. 2017; book ch. 14).

The environment's reward is hidden from the policy: PPO (`algo.base=ppo`: the rollout,
GAE and clipped-surrogate update of `rlrun.algos.ppo`) optimises a learned reward r̂(s, a)
instead, written into the rollout buffer in place of the env's rewards before GAE. Following
book ch. 14.2-14.3, after each rollout
1. trajectory segments σ = (s_0, a_0, ..., s_{k-1}, a_{k-1}) of `segment_len` = k steps
   (eq. 14.2) are cut from the rollout, starting anywhere; a segment whose episode terminates
   continues in an absorbing state of reward 0 (mask 0), a segment cut by the time limit
   before its end is not used (`rlrun.data.preferences.sample_segments`);
2. `annotations_per_iteration` pairs are chosen, at random or (`pair_selection=disagreement`)
   as those of `candidate_pairs` random pairs on which the ensemble's P(σ¹ ≻ σ²) varies most;
3. a synthetic annotator, standing in for people, labels them by the true returns
   (μ of eq. 14.4: the higher true return wins, ties within `tie_margin` get 0.5; noise by label
   flips or Boltzmann rationality, `rlrun.ops.preferences.synthetic_preferences`);
4. the reward-model ensemble (`ensemble` MLPs r̂(s, a), `rlrun.networks.reward_ensemble`) is
   trained on all comparisons (`rlrun.data.preferences.PreferenceDataset`) with the
   Bradley-Terry cross-entropy (eqs. 14.5-14.7, `rlrun.ops.reward_model`). As in Christiano et
   al., each member sees a bootstrap resample of the comparisons, here online: each comparison
   carries a Poisson(1) count per member, its weight in that member's loss (Oza & Russell 2001).
   A share `val_fraction` of the comparisons is held out (train/rm_accuracy);
5. the rollout's rewards become r̃ = (r̂ - m) / s, the ensemble mean normalised by the running
   mean m and std s of r̂ over all rollouts. The absorbing state after a termination (r̂ = 0 by
   the segment model) is normalised alike: its discounted tail γ(0 - m)/(s(1 - γ)) is added to
   the reward of the terminating step, so PPO's zero value after a termination stays exact.
Annotation stops at `total_annotations`; the model is retrained only when new comparisons
arrive. train/rm_true_return_corr is the correlation of learned and true returns over the
held-out segments; the evaluation (eval/) reports true returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gymnasium as gym
import numpy as np
import torch

from rlrun.algos._ppo_family import (
    PPOFamilyConfig,
    check_minibatches,
    clipped_loss,
    make_policy,
    minibatch_loss,
    update,
)
from rlrun.config import ConfigError, TrainConfig, check
from rlrun.data.batch import Batch
from rlrun.data.preferences import PreferenceDataset, sample_segments
from rlrun.data.rollout import RolloutBuffer, collect_rollout
from rlrun.envs.normalize import RunningMeanStd
from rlrun.networks.reward_ensemble import RewardEnsemble
from rlrun.ops.optim import anneal_lr, make_optimizer
from rlrun.ops.preferences import ensemble_disagreement, synthetic_preferences
from rlrun.ops.reward_model import member_returns, reward_model_metrics, train_reward_model
from rlrun.registry import AlgoSpec
from rlrun.run import Run, TrainResult


@dataclass
class RLHFConfig(PPOFamilyConfig):
    name: str = "rlhf"
    base: str = "ppo"
    """Policy optimiser on the learned reward: ppo (rlrun.algos.ppo, with all of its algo.* fields)."""
    segment_len: int = 25
    """Length k of each trajectory segment (env steps)."""
    annotations_per_iteration: int = 16
    """Pairs of segments annotated after each rollout while the budget lasts (count)."""
    total_annotations: int = 500
    """Annotation budget of the run (pairs)."""
    pair_selection: str = "disagreement"
    """How pairs are chosen: random, or disagreement (highest variance of the members' P(σ¹ ≻ σ²))."""
    candidate_pairs: int = 256
    """Random pairs among which `disagreement` picks the ones to annotate (count)."""
    annotator: str = "flip"
    """Synthetic annotator: flip (higher true return wins, flipped at random) or boltzmann."""
    annotator_noise: float = 0.0
    """Flip probability (flip) or temperature in true-return units (boltzmann); 0 is noiseless."""
    tie_margin: float = 0.0
    """True-return difference up to which a pair is labelled a tie, μ = 0.5 (return units)."""
    ensemble: int = 3
    """Reward-model members (count)."""
    rm_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer widths of each reward-model MLP (units)."""
    rm_lr: float = 1e-3
    """Reward-model learning rate (per gradient step)."""
    rm_weight_decay: float = 1e-4
    """Reward-model decoupled weight decay coefficient (AdamW, per step and unit of lr)."""
    rm_epochs: int = 3
    """Passes over the comparisons after each batch of new annotations (count)."""
    rm_batch_size: int = 32
    """Comparisons per reward-model minibatch (count)."""
    val_fraction: float = 0.2
    """Share of the comparisons held out to measure the reward model (probability per comparison)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.base == "ppo", f"algo.base={self.base!r}: only ppo is supported; use algo.base=ppo")
        check(self.segment_len >= 1, f"algo.segment_len={self.segment_len} must be >= 1")
        check(self.segment_len <= self.num_steps,
              f"algo.segment_len={self.segment_len} exceeds algo.num_steps={self.num_steps}; lower it")
        check(self.annotations_per_iteration >= 1,
              f"algo.annotations_per_iteration={self.annotations_per_iteration} must be >= 1")
        check(self.total_annotations >= 2, f"algo.total_annotations={self.total_annotations} must be >= 2")
        check(self.pair_selection in ("random", "disagreement"),
              f"algo.pair_selection={self.pair_selection!r} must be random or disagreement")
        check(self.candidate_pairs >= self.annotations_per_iteration,
              f"algo.candidate_pairs={self.candidate_pairs} must be >= algo.annotations_per_iteration")
        check(self.annotator in ("flip", "boltzmann"), f"algo.annotator={self.annotator!r} must be flip or boltzmann")
        check(self.annotator_noise >= 0, f"algo.annotator_noise={self.annotator_noise} must be >= 0")
        check(self.annotator != "flip" or self.annotator_noise <= 0.5,
              f"algo.annotator_noise={self.annotator_noise} is a flip probability here; use a value in [0, 0.5]")
        check(self.tie_margin >= 0, f"algo.tie_margin={self.tie_margin} must be >= 0")
        check(self.ensemble >= 1, f"algo.ensemble={self.ensemble} must be >= 1")
        check(all(size > 0 for size in self.rm_hidden_sizes),
              f"algo.rm_hidden_sizes={list(self.rm_hidden_sizes)} must all be > 0")
        check(self.rm_lr > 0, f"algo.rm_lr={self.rm_lr} must be > 0")
        check(self.rm_weight_decay >= 0, f"algo.rm_weight_decay={self.rm_weight_decay} must be >= 0")
        check(self.rm_epochs >= 1, f"algo.rm_epochs={self.rm_epochs} must be >= 1")
        check(self.rm_batch_size >= 1, f"algo.rm_batch_size={self.rm_batch_size} must be >= 1")
        check(0.0 <= self.val_fraction < 1.0, f"algo.val_fraction={self.val_fraction} must be in [0, 1)")


def check_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str = "this env") -> None:
    if not isinstance(obs_space, (gym.spaces.Box, gym.spaces.Discrete)) or len(obs_space.shape) > 1:
        raise ConfigError(f"algo=rlhf's reward model needs vector observations, {env_id} has {obs_space}")
    if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)) or len(action_space.shape) > 1:
        raise ConfigError(f"algo=rlhf needs Discrete or 1-D Box actions, {env_id} has {action_space}")


def select_pairs(segments: dict[str, torch.Tensor], reward_model: RewardEnsemble, algo: RLHFConfig
                 ) -> dict[str, torch.Tensor]:
    """Pair up the segments and keep `annotations_per_iteration` pairs (random or most disputed).

    Returns the pairs' obs, actions and masks [P, 2, k, ...] and true returns [P, 2].
    """
    pairs = len(segments["masks"]) // 2
    paired = {name: value[: 2 * pairs].reshape(pairs, 2, *value.shape[1:]) for name, value in segments.items()}
    wanted = min(algo.annotations_per_iteration, pairs)
    if algo.pair_selection == "disagreement" and len(reward_model.members) > 1:
        returns = member_returns(reward_model, paired["obs"], paired["actions"], paired["masks"])
        chosen = ensemble_disagreement(returns[:, :, 0], returns[:, :, 1]).topk(wanted).indices
    else:
        chosen = torch.arange(wanted, device=paired["masks"].device)  # segments are in random order
    return {name: value[chosen] for name, value in paired.items()}


@torch.no_grad()
def relabel_rewards(buffer: RolloutBuffer, reward_model: RewardEnsemble, reward_rms: RunningMeanStd,
                    gamma: float) -> float:
    """Replace the buffer's env rewards with the normalised learned reward; returns mean r̂."""
    rewards = reward_model(buffer.obs, buffer.actions).mean(0)
    reward_rms.update(rewards.reshape(-1).cpu().numpy().astype(np.float64))
    mean, std = float(reward_rms.mean), float(np.sqrt(reward_rms.var + 1e-8))
    absorbing_tail = gamma / (1.0 - gamma) * (0.0 - mean) / std if gamma < 1.0 else 0.0
    buffer.rewards.copy_((rewards - mean) / std + absorbing_tail * buffer.terminations)
    return float(rewards.mean())


def check_env_rewards(cfg: TrainConfig) -> None:
    if cfg.env.normalize_reward:
        raise ConfigError(
            "algo=rlhf replaces the env reward by its learned reward (normalised by the reward model); "
            "set env.normalize_reward=false"
        )


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: RLHFConfig = cfg.algo
    check_env_rewards(cfg)
    envs = run.make_envs(gamma=algo.gamma)
    check_minibatches(algo, envs.num_envs * algo.num_steps)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    agent = make_policy(cfg, obs_space, action_space).to(run.device)
    optimizer = make_optimizer(agent.parameters(), cfg.optimizer)
    reward_model = RewardEnsemble(obs_space, action_space, algo.ensemble, algo.rm_hidden_sizes,
                                  cfg.network.activation).to(run.device)
    rm_optimizer = make_optimizer(reward_model.parameters(), replace(
        cfg.optimizer, name="adamw", lr=algo.rm_lr, weight_decay=algo.rm_weight_decay, schedule="constant"))
    preferences = PreferenceDataset(algo.total_annotations, algo.segment_len, obs_space, action_space,
                                    algo.ensemble, run.device)
    reward_rms = RunningMeanStd(())
    run.track(agent=agent, optimizer=optimizer, envs=envs, reward_model=reward_model,
              reward_optimizer=rm_optimizer, preferences=preferences, reward_rms=reward_rms)
    global_step = run.restore()
    buffer = RolloutBuffer(algo.num_steps, envs.num_envs, obs_space, action_space, run.device)
    forward_and_loss = minibatch_loss(clipped_loss(algo), cfg.compile)
    obs = envs.reset(seed=run.env_seed)
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        obs = collect_rollout(agent, envs, buffer, obs, run.record_episodes, cfg.numpy_acting)
        global_step += buffer.batch_size
        metrics: dict[str, float] = {}
        if preferences.size < preferences.capacity:
            segments = sample_segments(buffer, 2 * algo.candidate_pairs, algo.segment_len)
            pairs = select_pairs(segments, reward_model, algo)
            mu1 = synthetic_preferences(pairs["true_returns"][:, 0], pairs["true_returns"][:, 1], algo.annotator,
                                        algo.annotator_noise, algo.tie_margin)
            preferences.add(pairs["obs"], pairs["actions"], pairs["masks"], mu1, pairs["true_returns"],
                            algo.val_fraction)
            metrics.update(train_reward_model(reward_model, rm_optimizer, preferences, algo.rm_epochs,
                                              algo.rm_batch_size))
        metrics.update(reward_model_metrics(reward_model, preferences))
        metrics["train/learned_reward_mean"] = relabel_rewards(buffer, reward_model, reward_rms, algo.gamma)
        metrics.update(update(agent, optimizer, Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda), algo,
                              forward_and_loss))
        run.log({**metrics, "train/annotations": float(preferences.size), "train/lr": lr}, global_step)
        run.maybe_evaluate(agent, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(agent, global_step)


SPEC = AlgoSpec(name="rlhf", config=RLHFConfig, train=train, make_policy=make_policy, policy_key="agent",
                check_spaces=check_spaces, compiles=True)
