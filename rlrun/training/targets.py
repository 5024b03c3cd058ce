"""Target-network updates for off-policy algorithms."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def _matched(
    target: Iterable[Tensor], source: Iterable[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """Return both tensor sequences as lists, raising if their lengths differ."""
    target, source = list(target), list(source)
    if len(target) != len(source):
        raise ValueError(f"target has {len(target)} tensors where source has {len(source)}")
    return target, source


def _copy(target: list[Tensor], source: list[Tensor]) -> None:
    """Copy ``source`` into ``target`` element-wise with one fused call."""
    if target:
        torch._foreach_copy_(target, source)


class TargetSync:
    """Keeps ``target`` in step with ``source``; their tensors are listed once, since walking
    ``parameters()`` on every update took longer than the fused copy itself."""

    def __init__(self, target: nn.Module, source: nn.Module) -> None:
        self.params = _matched(target.parameters(), source.parameters())
        self.buffers = _matched(target.buffers(), source.buffers())

    @torch.no_grad()
    def soft(self, tau: float) -> None:
        """Polyak averaging: ``target <- tau * source + (1 - tau) * target`` for parameters, with
        one fused ``_foreach_lerp_``; buffers (e.g. batch-norm statistics) are copied. ``tau=1``
        gives exactly ``hard``."""
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        if self.params[0]:
            torch._foreach_lerp_(*self.params, tau)
        _copy(*self.buffers)

    @torch.no_grad()
    def hard(self) -> None:
        """Copy all parameters and buffers of ``source`` into ``target`` in place."""
        _copy(*self.params)
        _copy(*self.buffers)


def hard_update(target: nn.Module, source: nn.Module) -> None:
    """Copy all parameters and buffers of ``source`` into ``target`` in place."""
    TargetSync(target, source).hard()
