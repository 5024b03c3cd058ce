"""rlrun: deep RL experiments from the command line (`rlrun`, `rlrun-eval`, `rlrun-report`) and
from Python (`rlrun.train`, `rlrun.load`; `rlrun.api`).

The names below are imported when first used, so that `import rlrun` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlrun.api import Policy, RunInProgressError, RunResult, load, train
    from rlrun.config import ConfigError
    from rlrun.run.checkpoint_files import CheckpointError

_EXPORTS = {
    "train": "rlrun.api",
    "load": "rlrun.api",
    "RunResult": "rlrun.api",
    "Policy": "rlrun.api",
    "RunInProgressError": "rlrun.api",
    "ConfigError": "rlrun.config",
    "CheckpointError": "rlrun.run.checkpoint_files",
}
"""Each public name -> the module that defines it."""

__all__ = ["CheckpointError", "ConfigError", "Policy", "RunInProgressError", "RunResult", "load", "train"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlrun' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
