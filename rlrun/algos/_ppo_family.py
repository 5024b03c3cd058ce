"""The clipped minibatch update of the PPO family (PPO, PPO-KL, RLHF; book ch. 8, Alg. 8.1): its
config, the actor-critic policy, the update (the epochs of shuffled minibatch steps with the KL
early stop of `rlrun.ops.minibatches`, on advantages standardised per minibatch), and the
clipped-surrogate minibatch loss. See `rlrun.algos.ppo` for the method."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch

from rlrun.config import AlgoConfig, ConfigError, TrainConfig, check, check_discount
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.clipped import ppo_loss
from rlrun.ops.distributions import Distribution
from rlrun.ops.minibatches import LossAndStats, minibatch_steps
from rlrun.ops.optim import FlatOptimizer
from rlrun.ops.returns import explained_variance, standardize


@dataclass
class PPOFamilyConfig(AlgoConfig):
    """Settings of the clipped minibatch loop shared by PPO, PPO-KL and RLHF."""

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
    """End the update, without stepping it, at the first minibatch whose approx KL to the old
    policy exceeds this (nats); null disables early stop."""

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


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return ActorCritic(cfg.network, obs_space, action_space)


def normalized_per_minibatch(advantages: torch.Tensor, minibatch_size: int) -> torch.Tensor:
    """Advantages standardised within each consecutive minibatch (rows past the last whole one dropped)."""
    per_minibatch = advantages[: len(advantages) // minibatch_size * minibatch_size].view(-1, minibatch_size)
    return standardize(per_minibatch, dim=1).view(-1)


LossFn = Callable[[Distribution, torch.Tensor, Batch, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""The loss of one minibatch: (π_θ of its rows, their new values, the minibatch, its normalised advantages)."""

MinibatchLoss = Callable[[ActorCritic, Batch, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""Forward pass and loss of one minibatch: (agent, minibatch, normalised advantages) -> (loss, stats)."""


def clipped_loss(algo: PPOFamilyConfig) -> LossFn:
    """The clipped-surrogate loss of one minibatch."""

    def loss_fn(dist, new_values, minibatch, advantages):
        return ppo_loss(dist.log_prob(minibatch.actions), minibatch.logprobs, advantages, new_values,
                        minibatch.values, minibatch.returns, dist.entropy(), algo)

    return loss_fn


def minibatch_loss(loss_fn: LossFn, compile: bool = False) -> MinibatchLoss:
    """The forward pass and `loss_fn` of one minibatch; with `compile`, through `torch.compile`, which
    fuses the forward and the backward into a few kernels, after a one-off compile (`compile=true`;
    `scripts/benchmark.py` measures what it gains)."""

    def forward_and_loss(agent, minibatch, advantages):
        dist, new_values = agent.dist_and_value(minibatch.obs)
        return loss_fn(dist, new_values, minibatch, advantages)

    if not compile:
        return forward_and_loss
    # Inductor, loaded at the first call, imports a module of torch's that uses its own
    # deprecated torch.jit.script_method: a note to torch, not to the user.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script_method. is deprecated",
                            category=DeprecationWarning)
    return torch.compile(forward_and_loss)


def update(
    agent: ActorCritic,
    optimizer: FlatOptimizer,
    batch: Batch,
    algo: PPOFamilyConfig,
    forward_and_loss: MinibatchLoss,
) -> dict[str, float]:
    """Epochs of shuffled minibatch gradient steps on `forward_and_loss`, with the KL early stop
    (`rlrun.ops.minibatches`); the loss parts are averaged over every minibatch evaluated.

    Each epoch gathers the batch in its random order once; minibatches are then slices of it
    (views), and the advantages are standardised for all minibatches in one pass.
    """
    batch_size = len(batch.advantages)
    minibatch_size = batch_size // algo.num_minibatches

    def epoch_loss(permutation: torch.Tensor) -> Callable[[slice], LossAndStats]:
        shuffled = batch.rows(permutation)
        advantages = shuffled.advantages
        if algo.norm_adv:
            advantages = normalized_per_minibatch(advantages, minibatch_size)
        return lambda rows: forward_and_loss(agent, shuffled.rows(rows), advantages[rows])

    steps = minibatch_steps([optimizer], batch_size, algo, epoch_loss, batch.advantages.device)
    metrics = {f"train/{key}": float(torch.stack([stats[key] for stats in steps.stats]).mean())
               for key in steps.stats[0]}
    grad_norms = steps.grad_norms[0]
    metrics["train/grad_norm"] = float(torch.stack(grad_norms).mean()) if grad_norms else 0.0
    metrics["train/explained_variance"] = explained_variance(batch.values, batch.returns)
    metrics["train/updates"] = float(steps.updates)
    metrics["train/early_stop"] = float(steps.early_stop)
    return metrics


def check_minibatches(algo: PPOFamilyConfig, batch_size: int) -> None:
    if batch_size // algo.num_minibatches < 1:
        raise ConfigError(
            f"algo.num_minibatches={algo.num_minibatches} exceeds the rollout batch of {batch_size} "
            "(env.num_envs * algo.num_steps); lower algo.num_minibatches"
        )
