"""The command line: the entry points (`rlrun`: `train_command`, `rlrun-eval`: `eval_command`,
`rlrun-report`: `report_command`), the arguments as users type them (`arguments`), composing and
validating a config before anything runs (`compose`, `compose_messages`, `validate`,
`config_dirs`, `choices`), and what a job of a sweep needs (`sweep_jobs`, `sweep_check`, `job`).
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRY_POINTS = {"train": "rlrun.cli.train_command", "evaluate": "rlrun.cli.eval_command",
                 "report": "rlrun.cli.report_command"}
"""The console scripts' functions -> their modules: `rlrun.cli:train` (`:evaluate`, `:report`),
as an install made before the entry points moved into this package still names them."""


def __getattr__(name: str) -> Any:
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'rlrun.cli' has no attribute '{name}'")
    return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
