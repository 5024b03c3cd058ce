"""The flattened on-policy batch: a rollout's rows with their GAE advantages and returns."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from rlrun.data.rollout import RolloutBuffer
from rlrun.ops.distributions import Distribution
from rlrun.ops.distributions import rows as distribution_rows
from rlrun.ops.returns import gae


@dataclass
class Batch:
    """A flattened rollout with its advantage estimates."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    @classmethod
    def from_rollout(cls, buffer: RolloutBuffer, gamma: float, gae_lambda: float) -> Batch:
        with torch.no_grad():
            advantages, returns = gae(
                buffer.rewards, buffer.values, buffer.next_values, buffer.terminations,
                buffer.episode_ends, gamma, gae_lambda,
            )
        return cls(buffer.flat_obs(), buffer.flat_actions(), buffer.logprobs.reshape(-1),
                   buffer.values.reshape(-1), advantages.reshape(-1), returns.reshape(-1))

    def rows(self, index: torch.Tensor | slice) -> Batch:
        """The batch rows `index`, every field (tensor or distribution) indexed alike."""
        return replace(self, **{field.name: _rows(getattr(self, field.name), index) for field in fields(self)})


def _rows(value: torch.Tensor | Distribution, index: torch.Tensor | slice) -> torch.Tensor | Distribution:
    return value[index] if isinstance(value, torch.Tensor) else distribution_rows(value, index)
