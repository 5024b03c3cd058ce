"""The update of an RL iteration of the LM pipeline (`rlrun.lm.pipeline`): epochs of shuffled
minibatches of whole responses (`rlrun.training.minibatches`, with the KL early stop), each
stepped on the algorithm's own loss plus the optional PPO-ptx term `ptx_coef` × pretraining NLL
(book eq. 15.12, a mean per token). The algorithm's module drives it:

    update = TokenSteps(models, rollout, task, algo)
    for mb in update.minibatches():
        loss, stats = my_loss(mb.logprobs, rollout.logprobs[mb.rows], ...)
        update.step(loss, stats)
    metrics = update.metrics()
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from rlrun.algos.configs import LMConfig
from rlrun.lm.pipeline import LMModels, Rollout, lm_loss, response_values, token_logprobs
from rlrun.lm.task import LMTask
from rlrun.training.minibatches import MinibatchSteps


@dataclass
class TokenMinibatch:
    """A minibatch of whole responses with the current networks' outputs on its tokens."""

    rows: torch.Tensor
    """Its rows of the rollout (indices)."""
    logprobs: torch.Tensor
    """log π^RL of its response tokens at the sampling temperature, with gradient, [mb, m]."""
    entropy: torch.Tensor
    """Entropy of π^RL before each response token, [mb, m]."""
    values: torch.Tensor | None
    """V(s_t) before each response token, with gradient, [mb, m]; None without a value network."""


class TokenSteps:
    """The minibatches and steps of the update of one RL iteration on `rollout`."""

    def __init__(self, models: LMModels, rollout: Rollout, task: LMTask, algo: LMConfig) -> None:
        self.models, self.rollout, self.task, self.algo = models, rollout, task, algo
        self.steps = MinibatchSteps(models.optimizers, algo.num_epochs, algo.num_minibatches,
                                    algo.max_grad_norm, algo.target_kl)

    def minibatches(self) -> Iterator[TokenMinibatch]:
        """The minibatches of every epoch, each with its forward pass."""
        n, models, rollout = self.task.prompt_length, self.models, self.rollout
        responses = len(rollout.tokens)
        for order in self.steps.orders(responses, rollout.tokens.device):
            for rows in self.steps.slices(responses):
                mb = order[rows]
                tokens = rollout.tokens[mb]
                logprobs, entropy = token_logprobs(models.policy, tokens, n, self.algo.temperature)
                values = None if models.value is None else response_values(models.value, tokens, n)
                yield TokenMinibatch(mb, logprobs, entropy, values)

    def step(self, loss: torch.Tensor, stats: dict[str, torch.Tensor]) -> None:
        """Step every optimizer on `loss` + `ptx_coef` × pretraining NLL (recorded as ptx_loss),
        unless `stats` end the update at `target_kl`."""
        algo, task = self.algo, self.task
        if algo.ptx_coef > 0 and not self.steps.exceeds_target_kl(stats):
            text = task.text(algo.supervised_batch_size, task.context_length)
            nll = lm_loss(self.models.policy, text.to(self.rollout.tokens.device))
            stats["ptx_loss"] = nll.detach()
            loss = loss + algo.ptx_coef * nll
        self.steps.step(loss, stats)

    def metrics(self) -> dict[str, float]:
        """`train/` metrics: the loss parts and gradient norms averaged over the minibatches
        stepped, the steps taken and the early stop."""
        steps = self.steps
        stepped = steps.stats[: steps.updates]
        count = max(steps.updates, 1)
        keys = stepped[0] if stepped else {}
        metrics = {f"train/{key}": float(sum(stats[key] for stats in stepped)) / count
                   for key in keys}
        metrics["train/grad_norm"] = float(sum(steps.grad_norms[0])) / count
        if len(self.models.optimizers) > 1:
            metrics["train/value_grad_norm"] = float(sum(steps.grad_norms[1])) / count
        metrics["train/updates"] = float(steps.updates)
        metrics["train/early_stop"] = float(steps.early_stop)
        return metrics
