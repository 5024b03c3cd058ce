"""Checks of a multirun (`rlrun -m ...`) before Hydra makes its sweep dir or starts a job: every
value of a swept config key fits its type, and a Slurm launcher has Slurm to submit to."""

from __future__ import annotations

import contextlib
import copy
import shutil

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from rlrun.config import ConfigError


def check_sweep_values(job: DictConfig, overrides: list[str], is_group) -> None:
    """Raise ConfigError on the first value of a sweep over a config key (`optimizer.lr=1e-3,abc`)
    that the key's type refuses, checked on the composed `job` config of the sweep's first values.
    `is_group(key)`: the key picks a config group (those sweeps are composed one by one)."""
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if (not override.is_sweep_override() or not isinstance(override.value(), ChoiceSweep)
                or key.startswith("hydra") or is_group(key)):
            continue
        for value in list(override.sweep_iterator())[1:]:
            node = copy.deepcopy(job)
            try:
                with open_dict(node) if override.is_add() else contextlib.nullcontext():
                    OmegaConf.update(node, key, value, merge=True)
            except OmegaConfBaseException as error:
                reason = str(error).splitlines()[0]
                raise ConfigError(f"{key}={value}: {reason}; fix this value of the sweep "
                                  f"{override.input_line}") from None


def check_launcher(cfg: DictConfig) -> None:
    """Raise ConfigError when the composed `cfg`'s launcher submits to Slurm and `sbatch` is not
    on the PATH (submitit would fail after making the sweep dir)."""
    target = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    if target.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise ConfigError(
            "hydra/launcher=submitit_slurm submits to Slurm, but sbatch is not on the PATH here: "
            "run the command on the cluster's login node, or launch on this machine with "
            "hydra/launcher=joblib (parallel jobs) or drop hydra/launcher"
        )
