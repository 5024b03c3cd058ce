"""Epochs of shuffled minibatch gradient steps with the KL early stop (book ch. 8, Alg. 8.1): the
update of the PPO family (PPO, PPO-KL, RLHF) and of RL for language models (ppo_lm, GRPO).

The algorithm's module drives the epochs and computes its own loss in the loop's body:

    steps = MinibatchSteps([optimizer], num_epochs, num_minibatches, max_grad_norm, target_kl)
    for mb in shuffled_minibatches(batch, steps, norm_adv):
        loss, stats = my_loss(...mb...)
        steps.step(loss, stats)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from rlrun.data.batch import Batch
from rlrun.ops.returns import standardize
from rlrun.training.optim import FlatOptimizer

LossAndStats = tuple[torch.Tensor, dict[str, torch.Tensor]]


class MinibatchSteps:
    """The order of an update's minibatches and a step of every optimizer on each one's loss.

    `orders` draws each epoch's random order of the rows, `slices` cuts it into `num_minibatches`
    minibatches (rows past the last whole one are left out), `step` steps every optimizer
    (clipped to `max_grad_norm`) on a minibatch's loss. The first minibatch whose `approx_kl`
    exceeds `target_kl` ends the update without a step (its policy already left the KL radius):
    both iterators stop there, and no further order is drawn.
    """

    def __init__(self, optimizers: Sequence[FlatOptimizer], num_epochs: int, num_minibatches: int,
                 max_grad_norm: float, target_kl: float | None) -> None:
        self.optimizers = optimizers
        self.num_epochs = num_epochs
        self.num_minibatches = num_minibatches
        self.max_grad_norm = max_grad_norm
        self.target_kl = target_kl
        self.stats: list[dict[str, torch.Tensor]] = []
        """The loss parts of every minibatch evaluated, in order; after an early stop the last
        one is that of the minibatch that was not stepped."""
        self.grad_norms: list[list[torch.Tensor]] = [[] for _ in optimizers]
        """Per optimizer, the global gradient norm before clipping of every step (L2 norm)."""
        self.early_stop = False
        """Whether a minibatch's approx KL exceeded `target_kl` and ended the update."""

    @property
    def updates(self) -> int:
        """Gradient steps taken (count)."""
        return len(self.grad_norms[0])

    def orders(self, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
        """A fresh random order of the `batch_size` rows for each of `num_epochs` epochs."""
        for _ in range(self.num_epochs):
            if self.early_stop:
                return
            yield torch.randperm(batch_size, device=device)

    def slices(self, batch_size: int) -> Iterator[slice]:
        """The minibatches of one epoch: consecutive slices of its order."""
        minibatch_size = batch_size // self.num_minibatches
        for start in range(0, batch_size - minibatch_size + 1, minibatch_size):
            if self.early_stop:
                return
            yield slice(start, start + minibatch_size)

    def exceeds_target_kl(self, stats: dict[str, torch.Tensor]) -> bool:
        """Whether a minibatch with these loss parts ends the update (approx KL > `target_kl`)."""
        return self.target_kl is not None and bool(stats["approx_kl"] > self.target_kl)

    def step(self, loss: torch.Tensor, stats: dict[str, torch.Tensor]) -> None:
        """Record `stats`; then end the update if they exceed `target_kl`, else step on `loss`."""
        self.stats.append(stats)
        if self.exceeds_target_kl(stats):
            self.early_stop = True
            return
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        loss.backward()
        for grad_norms, optimizer in zip(self.grad_norms, self.optimizers):
            grad_norms.append(optimizer.clip_grad_norm(self.max_grad_norm))
            optimizer.step()


def normalized_per_minibatch(advantages: torch.Tensor, minibatch_size: int) -> torch.Tensor:
    """Advantages standardised within each consecutive minibatch (rows past the last whole one
    dropped)."""
    whole = len(advantages) // minibatch_size * minibatch_size
    per_minibatch = advantages[:whole].view(-1, minibatch_size)
    return standardize(per_minibatch, dim=1).view(-1)


def shuffled_minibatches(batch: Batch, steps: MinibatchSteps, norm_adv: bool) -> Iterator[Batch]:
    """The minibatches of `steps`' epochs over `batch`, with advantages standardised per minibatch
    when `norm_adv`.

    Each epoch gathers the batch in its random order once; minibatches are then slices of it
    (views), and the advantages of all minibatches are standardised in one pass.
    """
    batch_size = len(batch.advantages)
    minibatch_size = batch_size // steps.num_minibatches
    for order in steps.orders(batch_size, batch.advantages.device):
        shuffled = batch.rows(order)
        if norm_adv:
            shuffled.advantages = normalized_per_minibatch(shuffled.advantages, minibatch_size)
        for rows in steps.slices(batch_size):
            yield shuffled.rows(rows)


def minibatch_steps(
    optimizers: Sequence[FlatOptimizer],
    batch_size: int,
    algo: object,
    epoch_loss: Callable[[torch.Tensor], Callable[[slice], LossAndStats]],
    device: torch.device,
    extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
) -> MinibatchSteps:
    """The epochs of `MinibatchSteps` on losses given as functions, for algorithms outside rlrun
    written against `rlrun.plugin.minibatch_steps`.

    `algo` has `num_epochs`, `num_minibatches`, `max_grad_norm` and `target_kl`;
    `epoch_loss(order)` returns the loss and its parts of minibatch `rows` (a slice of that
    order); `extra_loss(stats)` is added to the loss of every minibatch that is stepped.
    """
    steps = MinibatchSteps(optimizers, algo.num_epochs, algo.num_minibatches, algo.max_grad_norm,
                           algo.target_kl)
    for order in steps.orders(batch_size, device):
        minibatch_loss = epoch_loss(order)
        for rows in steps.slices(batch_size):
            loss, stats = minibatch_loss(rows)
            if extra_loss is not None and not steps.exceeds_target_kl(stats):
                loss = loss + extra_loss(stats)
            steps.step(loss, stats)
    return steps
