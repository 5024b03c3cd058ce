"""The modules behind a user's envs, imported wherever an env is composed or made.

- `env=<module>:<id>` (Gymnasium's own syntax) imports `<module>`, which registers `<id>`.
- `env.imports=[<module>, ...]` imports modules that register ids: env packages (minigrid,
  highway_env, gymnasium_robotics) or the user's own.
- `env.entry_point=<module>:<Class>` registers an unregistered env class (or function) under
  the `env=` name, which defaults to the class name (`rlrun.cli.arguments` adds `env=<Class>`).

The current directory is importable, as in `python train.py`. A module that fails to import is
one line (`ConfigError`) with its own error.

Hydra picks the env node (`env/<id>`, served from Gymnasium's registry) and its family while it
builds the defaults list, before any config value exists, so the command line's `env=`,
`env.imports=` and `env.entry_point=` are read and imported before composing
(`import_from_overrides`). The config (and so every checkpoint) keeps them: `load` imports them
again wherever an env is made from a config (evaluation, video, export, Minari recording, resume,
an expert's checkpoint, async env subprocesses). See `share` for sweep workers.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

from rlrun.config import ConfigError

SHARED = "RLRUN_ENV_MODULES"
"""Environment variable through which sweep workers get the main process's env modules."""

UNKNOWN_ENV_HINT = (
    "an id of another package needs env.imports=[<package>] or env=<module>:<id>; "
    "a class of your own, env.entry_point=<module>:<Class>"
)
"""How to reach an id that Gymnasium's registry does not hold (the end of 'unknown env')."""

_loaded_shared: str | None = None
"""The value of `SHARED` this process has imported."""


def registry_id(env_id: str) -> str:
    """The id Gymnasium registers `env_id` under: `mymod:MyEnv-v0` -> `MyEnv-v0`."""
    return env_id.partition(":")[2] if ":" in env_id else env_id


def env_module(env_id: str) -> str | None:
    """The module of a `<module>:<id>` env id, or None."""
    return env_id.partition(":")[0] if ":" in env_id else None


def _cwd_importable() -> None:
    """Put the current directory on `sys.path`, as `python train.py` does for its folder."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message, or, without one (a bare assert in an env package),
    its type and where it was raised."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}{where}"


def import_module(name: str, key: str):
    """Import `name` (for the config key `key`), or raise ConfigError with its own error."""
    _cwd_importable()
    try:
        return importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - a module may raise anything; one line names it
        detail = str(error).splitlines()[0] if str(error) else ""
        if not isinstance(error, ImportError) or not detail:
            detail = f"{type(error).__name__}: {detail}".rstrip(": ")
        hint = ""
        if isinstance(error, ModuleNotFoundError) and error.name == name.split(".")[0]:
            hint = (
                f" (not in {os.getcwd()} nor on PYTHONPATH: run from its folder, add that folder "
                "to PYTHONPATH, or pip install its package)"
            )
        raise ConfigError(f"{key}: cannot import '{name}': {detail}{hint}") from None


def _register(env_id: str, entry_point: str) -> None:
    """Register `entry_point` (`<module>:<Class>`) under `env_id`, unless it already is."""
    module, sep, name = entry_point.partition(":")
    if not (sep and module and name):
        raise ConfigError(
            f"env.entry_point={entry_point} must be <module>:<Class>, e.g. mypkg.envs:MyEnv"
        )
    imported = import_module(module, "env.entry_point")
    creator = getattr(imported, name, None)
    if not callable(creator):
        names = [n for n in vars(imported) if not n.startswith("_")]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"env.entry_point: module '{module}' has no class '{name}'{hint}")
    registered = gym.registry.get(registry_id(env_id))
    if registered is not None:
        if registered.entry_point in (entry_point, creator):
            return
        raise ConfigError(
            f"env.entry_point={entry_point} makes an unregistered class, but env={env_id} is "
            f"registered already ({registered.entry_point}): name it env=<new name> (default: "
            f"drop env=, and it is {name})"
        )
    try:
        gym.register(id=registry_id(env_id), entry_point=entry_point)
    except gym.error.Error as error:
        raise ConfigError(f"env={env_id} cannot name env.entry_point={entry_point}: {error}") from None


def load(env_id: str, imports: Sequence[str] = (), entry_point: str | None = None) -> None:
    """Import what an env config needs before its id can be found or made: `imports`, the module
    of a `<module>:<id>` id, and `entry_point` registered under the id. Cheap when done before."""
    load_shared()
    for name in imports:
        import_module(name, "env.imports")
    module = env_module(env_id)
    if module is not None:
        import_module(module, f"env={env_id}")
    if entry_point is not None:
        _register(env_id, entry_point)


def share(env_id: str, imports: Sequence[str] = (), entry_point: str | None = None) -> None:
    """Hand what `load` imported to the processes this one starts (sweep workers), if anything.

    Hydra's launchers compose each job's config again in the worker (joblib's loky processes,
    submitit's, Ray's tasks), so the worker must import the modules before Hydra looks up its
    env node, and nothing of rlrun runs there before that lookup but this module's config
    source. The job's overrides cannot carry them there (Hydra reads them only while composing),
    so they travel in the environment variable `SHARED` (JSON: the folders to import from, the
    modules, the entry points by id), which every launcher's worker inherits from this process
    (loky and submitit_local start their processes with its environment, Slurm's sbatch exports
    it, a local Ray instance inherits it); the registry's config source (`load_shared`) imports
    them before it answers. An `env=<module>:<id>` needs none of this: the config source imports
    its module itself.
    """
    if not (imports or entry_point or env_module(env_id)):
        return
    shared = json.loads(os.environ.get(SHARED, "{}"))
    path, modules = shared.setdefault("path", []), shared.setdefault("imports", [])
    entry_points = shared.setdefault("entry_points", {})
    if os.getcwd() not in path:
        path.append(os.getcwd())
    modules.extend(name for name in imports if name not in modules)
    if entry_point is not None:
        entry_points[registry_id(env_id)] = entry_point
    os.environ[SHARED] = json.dumps(shared)


def load_shared() -> None:
    """Import the env modules that the process which started this one shared (`share`)."""
    global _loaded_shared
    value = os.environ.get(SHARED)
    if value is None or value == _loaded_shared:
        return
    _loaded_shared = value  # first: `load` below calls this again
    shared = json.loads(value)
    sys.path.extend(folder for folder in shared.get("path", []) if folder not in sys.path)
    for env_id, entry_point in shared.get("entry_points", {}).items():
        load(env_id, entry_point=entry_point)
    load("", shared.get("imports", []))


def entry_point_name(entry_point: str) -> str:
    """The env id an entry point gets without `env=`: its class name (`pkg.envs:MyEnv` -> MyEnv)."""
    return entry_point.rpartition(":")[2] or entry_point


def import_from_overrides(overrides: list[str]) -> None:
    """Import and share what the overrides' `env=`, `env.imports=` and `env.entry_point=` need,
    before Hydra composes them (a sweep's values are each composed apart, see
    `rlrun.cli.compose.override_lists`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    env_id, imports, entry_point = "", [], None
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override() or override.is_delete():
            continue
        key, value = override.key_or_group, override.value()
        if key == "env" and isinstance(value, str):
            env_id = value
        elif key == "env.imports":
            imports = [str(name) for name in value] if isinstance(value, list) else [str(value)]
        elif key == "env.entry_point" and value is not None:
            entry_point = str(value)
    if entry_point is not None and not env_id:
        env_id = entry_point_name(entry_point)
    load(env_id, imports, entry_point)
    share(env_id, imports, entry_point)
