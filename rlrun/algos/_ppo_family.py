"""What the PPO family (PPO, PPO-KL, RLHF; book ch. 8, Alg. 8.1) shares besides the rollout loop
of `rlrun.algos._rollouts`: the minibatch stepper with the family's settings, the check of the
minibatch size, the update's metrics, and `torch.compile` of a minibatch's forward pass and loss.
Each algorithm's module holds its loss and drives the epochs of its update itself (see
`rlrun.algos.ppo.update`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from rlrun.algos.configs import PPOFamilyConfig
from rlrun.config import ConfigError
from rlrun.data.batch import Batch
from rlrun.ops.returns import explained_variance
from rlrun.training.minibatches import MinibatchSteps
from rlrun.training.optim import FlatOptimizer


def minibatch_stepper(optimizer: FlatOptimizer, algo: PPOFamilyConfig) -> MinibatchSteps:
    """The epochs, minibatches, gradient clip and KL early stop of `algo` for one optimizer."""
    return MinibatchSteps([optimizer], algo.num_epochs, algo.num_minibatches, algo.max_grad_norm,
                          algo.target_kl)


def update_metrics(steps: MinibatchSteps, batch: Batch) -> dict[str, float]:
    """`train/` metrics of an update: each loss part averaged over every minibatch evaluated, the
    mean gradient norm, the critic's explained variance, the steps taken and the early stop."""
    metrics = {f"train/{key}": float(torch.stack([stats[key] for stats in steps.stats]).mean())
               for key in steps.stats[0]}
    grad_norms = steps.grad_norms[0]
    metrics["train/grad_norm"] = float(torch.stack(grad_norms).mean()) if grad_norms else 0.0
    metrics["train/explained_variance"] = explained_variance(batch.values, batch.returns)
    metrics["train/updates"] = float(steps.updates)
    metrics["train/early_stop"] = float(steps.early_stop)
    return metrics


def compiled(forward_and_loss: Callable) -> Callable:
    """`forward_and_loss` through `torch.compile`, which fuses the forward and the backward into a
    few kernels, after a one-off compile (`compile=true`; `scripts/benchmark.py` measures what it
    gains)."""
    # Inductor, loaded at the first call, imports a module of torch's that uses its own
    # deprecated torch.jit.script_method: a note to torch, not to the user.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script_method. is deprecated",
                            category=DeprecationWarning)
    return torch.compile(forward_and_loss)


def check_minibatches(algo: PPOFamilyConfig, batch_size: int) -> None:
    if batch_size // algo.num_minibatches < 1:
        raise ConfigError(
            f"algo.num_minibatches={algo.num_minibatches} exceeds the rollout batch of {batch_size} "
            "(env.num_envs * algo.num_steps); lower algo.num_minibatches"
        )
