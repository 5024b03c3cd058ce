"""Multi-layer perceptrons and layer initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
}

HIDDEN_GAIN = math.sqrt(2.0)


def layer_init(layer: nn.Linear | nn.Conv2d, gain: float, orthogonal: bool = True) -> nn.Module:
    """Orthogonal weights with `gain` and zero bias (Engstrom et al. 2020); no-op if not orthogonal."""
    if orthogonal:
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


def mlp(
    in_dim: int,
    hidden_sizes: list[int],
    activation: str,
    orthogonal: bool = True,
) -> nn.Sequential:
    """Hidden layers only: Linear + activation per size; the output width is hidden_sizes[-1]."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, size), HIDDEN_GAIN, orthogonal), ACTIVATIONS[activation]()]
        in_dim = size
    return nn.Sequential(*layers)


def flat_dim(shape: tuple[int, ...]) -> int:
    return int(torch.Size(shape).numel())
