"""Nature CNN torso (Mnih et al. 2015) for stacked 84x84 frames."""

from __future__ import annotations

import torch
from torch import nn

from rlrun.networks.mlp import HIDDEN_GAIN, layer_init

MIN_IMAGE_SIZE = 36
"""Smallest height and width (pixels) whose features survive the three convolutions."""


class NatureCNN(nn.Module):
    """Three conv layers and one dense layer; uint8 frames are scaled to [0, 1] inside."""

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, orthogonal: bool = True) -> None:
        super().__init__()
        channels = obs_shape[0]
        self.convs = nn.Sequential(
            layer_init(nn.Conv2d(channels, 32, 8, stride=4), HIDDEN_GAIN, orthogonal), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2), HIDDEN_GAIN, orthogonal), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1), HIDDEN_GAIN, orthogonal), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            conv_dim = self.convs(torch.zeros(1, *obs_shape)).shape[1]
        self.dense = nn.Sequential(layer_init(nn.Linear(conv_dim, out_dim), HIDDEN_GAIN, orthogonal), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(obs.float() / 255.0))
