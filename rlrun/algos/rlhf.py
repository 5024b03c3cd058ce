"""Reinforcement learning from preferences (Christiano et al. 2017; book ch. 14).

The environment's reward is hidden from the policy: PPO (`algo.base=ppo`: the rollout, GAE
and clipped-surrogate update of `rlrun.algos.ppo`, its `update` and `ppo_loss`, which this
module calls by name) optimises a learned reward r̂(s, a) instead, written into the rollout
buffer in place of the env's rewards before GAE. Following
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
   Bradley-Terry cross-entropy (eqs. 14.5-14.7, `rlrun.training.reward_model`). As in Christiano et
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

from dataclasses import replace

import gymnasium as gym
import numpy as np
import torch

from rlrun.algos import ppo
from rlrun.algos._ppo_family import check_minibatches, compiled
from rlrun.algos._rollouts import RolloutLoop, make_policy
from rlrun.algos.configs import RLHFConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import ConfigError, TrainConfig
from rlrun.data.batch import Batch
from rlrun.data.preferences import PreferenceDataset, sample_segments
from rlrun.data.rollout import RolloutBuffer
from rlrun.envs.normalize import RunningMeanStd
from rlrun.networks.reward_ensemble import RewardEnsemble
from rlrun.ops.preferences import ensemble_disagreement, synthetic_preferences
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import make_optimizer
from rlrun.training.reward_model import member_returns, reward_model_metrics, train_reward_model


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
    loop = RolloutLoop(cfg, run, envs, agent, optimizer)
    forward_and_loss = compiled(ppo.minibatch_loss) if cfg.compile else ppo.minibatch_loss
    for buffer, metrics in loop:
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
        batch = Batch.from_rollout(buffer, algo.gamma, algo.gae_lambda)
        metrics.update(ppo.update(agent, optimizer, batch, algo, forward_and_loss))
        metrics["train/annotations"] = float(preferences.size)
    return loop.finish()


SPEC = AlgoSpec(name="rlhf", config=RLHFConfig, train=train, make_policy=make_policy, policy_key="agent",
                check_spaces=check_spaces, compiles=True)
