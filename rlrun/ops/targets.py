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


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak-average ``source`` into ``target`` in place.

    ``target <- tau * source + (1 - tau) * target`` for parameters, with one fused
    ``_foreach_lerp_``; buffers (e.g. batch-norm statistics) are copied. ``tau=1`` gives
    exactly ``hard_update``.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    target_params, source_params = _matched(target.parameters(), source.parameters())
    if target_params:
        torch._foreach_lerp_(target_params, source_params, tau)
    _copy(*_matched(target.buffers(), source.buffers()))


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """Copy all parameters and buffers of ``source`` into ``target`` in place."""
    _copy(*_matched(target.parameters(), source.parameters()))
    _copy(*_matched(target.buffers(), source.buffers()))
