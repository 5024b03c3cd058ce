"""What every command sets up before it composes a config: rlrun's Hydra plugins (the Gym
registry's env configs, the algorithm packages' and the user's config dirs), the typed schemas
and the resolvers its configs use, and the warnings it silences.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

from rlrun.cli.compose import group_options
from rlrun.cli.config_dirs import UserConfigSearchPath
from rlrun.cli.sweep_jobs import job_dir_name
from rlrun.config import register_schemas
from rlrun.envs.config_source import GymRegistryConfigSource, GymRegistrySearchPath
from rlrun.envs.imports import registry_id
from rlrun.registry import AlgoPackagesSearchPath, schemas
from rlrun.run.checkpoint_files import run_dir_of


def _run_dir(resume: str | None, default: str) -> str:
    """hydra.run.dir: a resumed run continues in its own dir."""
    if resume is None:
        return default
    path = Path(resume).expanduser()
    return str(path if path.is_dir() else run_dir_of(path))


def _quiet_warnings() -> None:
    """Silence warnings about choices the user made on purpose.

    Also run on import: sweep worker processes (joblib, submitit) import `rlrun.cli.train_command`, and with it
    this module, to unpickle the task function, before they compose their job's config.
    """
    import warnings

    # Gymnasium warns on every make() of an older version (Hopper-v4): the user chose it.
    warnings.filterwarnings("ignore", message=".*is out of date.*")
    # conf/hydra/launcher/submitit_*.yaml set values over the plugin's schema of the same name.
    warnings.filterwarnings(
        "ignore", message=r"(?s).*is validated against ConfigStore schema with the same name"
    )


_quiet_warnings()


def closed_pipe_ends_quietly(command: Callable[[], None]) -> Callable[[], None]:
    """The entry point `command`, ended quietly when its reader stops early (`rlrun --help | head`):
    no traceback, the rest of its output dropped, exit code 141 (128 + SIGPIPE, as a shell's own
    tools end)."""

    @functools.wraps(command)
    def entry_point() -> None:
        try:
            command()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(141) from None

    return entry_point


def setup() -> None:
    """Register rlrun's config sources, search paths, schemas and resolvers (every command does)."""
    _quiet_warnings()
    Plugins.instance().register(GymRegistryConfigSource)
    Plugins.instance().register(GymRegistrySearchPath)
    Plugins.instance().register(AlgoPackagesSearchPath)
    Plugins.instance().register(UserConfigSearchPath)
    register_schemas(schemas())
    if not OmegaConf.has_resolver("rlrun_run_dir"):
        OmegaConf.register_new_resolver("rlrun_run_dir", _run_dir)
        OmegaConf.register_new_resolver("rlrun_algos", lambda: " | ".join(schemas()))
        OmegaConf.register_new_resolver("rlrun_job_dir", job_dir_name)
        OmegaConf.register_new_resolver("rlrun_env_dir", registry_id)
        OmegaConf.register_new_resolver("rlrun_options", lambda group: " | ".join(group_options(group)))
