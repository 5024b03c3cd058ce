"""The clipped minibatch update of the PPO family (PPO, PPO-KL, RLHF; book ch. 8, Alg. 8.1): the
actor-critic policy, the update (the epochs of shuffled minibatch steps with the KL
early stop of `rlrun.ops.minibatches`, on advantages standardised per minibatch), and the
clipped-surrogate minibatch loss. See `rlrun.algos.ppo` for the method."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import gymnasium as gym
import torch

from rlrun.algos.configs import PPOFamilyConfig
from rlrun.config import ConfigError, TrainConfig
from rlrun.data.batch import Batch
from rlrun.networks.actor_critic import ActorCritic
from rlrun.ops.clipped import ppo_loss
from rlrun.ops.distributions import Distribution
from rlrun.ops.minibatches import LossAndStats, minibatch_steps
from rlrun.ops.optim import FlatOptimizer
from rlrun.ops.returns import explained_variance, standardize


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
