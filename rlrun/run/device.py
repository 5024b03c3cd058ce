"""The torch device a `device=` setting names."""

from __future__ import annotations

import torch

from rlrun.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` (cuda when available), `cpu`, `cuda` or `cuda:N`; ConfigError for cuda without
    CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but CUDA is not available here; use device=cpu or device=auto")
    return device
