"""Epochs of shuffled minibatch gradient steps with the KL early stop (book ch. 8, Alg. 8.1): the
update loop of the PPO family (PPO, PPO-KL, RLHF) and of RL for language models (ppo_lm, GRPO)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from rlrun.ops.optim import FlatOptimizer

LossAndStats = tuple[torch.Tensor, dict[str, torch.Tensor]]

EpochLoss = Callable[[torch.Tensor], Callable[[slice], LossAndStats]]
"""An epoch's order of the batch rows (a permutation) -> the loss and its parts of minibatch
`rows`, a slice of that order."""


class MinibatchSettings(Protocol):
    """The config fields the loop reads (PPOFamilyConfig and LMConfig have them)."""

    num_epochs: int
    num_minibatches: int
    max_grad_norm: float
    target_kl: float | None


@dataclass
class MinibatchSteps:
    """What the epochs of one update did."""

    stats: list[dict[str, torch.Tensor]] = field(default_factory=list)
    """The loss parts of every minibatch evaluated, in order; after an early stop the last one
    is that of the minibatch that was not stepped."""
    grad_norms: list[list[torch.Tensor]] = field(default_factory=list)
    """Per optimizer, the global gradient norm before clipping of every step (L2 norm)."""
    early_stop: bool = False
    """Whether a minibatch's approx KL exceeded `target_kl` and ended the update."""

    @property
    def updates(self) -> int:
        """Gradient steps taken (count)."""
        return len(self.grad_norms[0])


def minibatch_steps(
    optimizers: Sequence[FlatOptimizer],
    batch_size: int,
    algo: MinibatchSettings,
    epoch_loss: EpochLoss,
    device: torch.device,
    extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
) -> MinibatchSteps:
    """`num_epochs` passes over the `batch_size` rows, each in a fresh random order cut into
    `num_minibatches` minibatches (rows past the last whole one are left out), with a step of
    every optimizer (clipped to `max_grad_norm`) on each minibatch's loss.

    The first minibatch whose `approx_kl` exceeds `target_kl` ends the update without a step:
    its policy already left the KL radius. `extra_loss(stats)` is added to the loss of every
    minibatch that is stepped (and may record itself in its stats).
    """
    minibatch_size = batch_size // algo.num_minibatches
    steps = MinibatchSteps(grad_norms=[[] for _ in optimizers])
    for _ in range(algo.num_epochs):
        minibatch_loss = epoch_loss(torch.randperm(batch_size, device=device))
        for start in range(0, batch_size - minibatch_size + 1, minibatch_size):
            loss, stats = minibatch_loss(slice(start, start + minibatch_size))
            steps.stats.append(stats)
            if algo.target_kl is not None and stats["approx_kl"] > algo.target_kl:
                steps.early_stop = True
                return steps
            if extra_loss is not None:
                loss = loss + extra_loss(stats)
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for grad_norms, optimizer in zip(steps.grad_norms, optimizers):
                grad_norms.append(optimizer.clip_grad_norm(algo.max_grad_norm))
                optimizer.step()
    return steps
