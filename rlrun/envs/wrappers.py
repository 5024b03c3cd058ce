"""The user's Gymnasium wrappers (`env.wrappers`) and the keyword checks of envs and wrappers.

Each entry of `env.wrappers` is `{_target_: <import path>, <keyword>: <value>, ...}` or the
import path alone. Its keywords are built with `hydra.utils.instantiate` (nested `_target_`
values are instantiated too, e.g. a reward function `{_target_: numpy.sign, _partial_: true}`),
lists becoming tuples; the target is called with the env as its first argument and the
keywords, and must return a Gymnasium env. Every mistake (an import that fails, a keyword the
wrapper does not take, a target that returns no env) is one `ConfigError` line.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rlrun.config import ConfigError
from rlrun.envs.imports import first_line, import_module, registry_id

_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def keyword_parameters(factory: Callable[..., Any], skip: int = 0) -> list[str]:
    """The parameters of `factory` (a class: its constructor) that take keywords, after its
    first `skip` (a wrapper's env); [] when Python cannot tell."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.kind in kinds][skip:]


def rejected_keyword(
    error: BaseException, given: dict[str, Any], factory: Callable[..., Any] | None, owner: str,
    key: str, skip: int = 0,
) -> str | None:
    """`<key>.<name>: <owner> does not take '<name>' (did you mean ...?); it takes a, b, ...`
    when `error` is the TypeError of a keyword of `given` that `factory` does not take; else
    None."""
    match = _UNEXPECTED.search(str(error))
    if factory is None or match is None or match.group(1) not in given:
        return None
    name = match.group(1)
    names = [n for n in keyword_parameters(factory, skip) if n != "render_mode"]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    takes = f"it takes {', '.join(names)}" if names else "it takes no keywords"
    return f"{key}.{name}: {owner} does not take '{name}'{hint}; {takes}"


def env_creator(env_id: str) -> Callable[..., Any] | None:
    """The class or function Gymnasium's registry builds `env_id` with; None if unregistered."""
    from gymnasium.envs.registration import load_env_creator

    env_id = registry_id(env_id)
    entry_point = gym.registry[env_id].entry_point if env_id in gym.registry else None
    if isinstance(entry_point, str):
        try:
            return load_env_creator(entry_point)
        except (ImportError, AttributeError, ValueError):
            return None
    return entry_point


def _locate(path: str, where: str, kind: str = "wrapper class or function",
            example: str = "gymnasium.wrappers.FlattenObservation") -> Callable[..., Any]:
    """The object at the dotted import path `path` (`package.module.Name`), a `kind` (messages
    name `example` as one)."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{where}: '{path}' is not an import path; give <module>.<name>, "
                          f"e.g. {example}")
    module = import_module(module_name, where)
    if not hasattr(module, name):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(name, public, n=3)
        hint = f"; did you mean {', '.join(f'{module_name}.{c}' for c in close)}?" if close else ""
        raise ConfigError(f"{where}: {module_name} has no '{name}'{hint}")
    target = getattr(module, name)
    if not callable(target):
        raise ConfigError(f"{where}: {path} is a {type(target).__name__}, not a {kind}")
    return target


def wrapper_target(wrapper: str | dict[str, Any]) -> str:
    """The import path of one `env.wrappers` entry."""
    return wrapper if isinstance(wrapper, str) else wrapper["_target_"]


def _tuples(value: Any) -> Any:
    """`value` with its lists as tuples, nested ones too: YAML has no tuples, and some wrappers
    take nothing else (Gymnasium's ResizeObservation and ReshapeObservation: `shape`)."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list | tuple) else value


def apply_wrappers(env: gym.Env, wrappers: list[Any], env_id: str) -> gym.Env:
    """`env` wrapped by each entry of `wrappers` in order (see the module docstring)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    for index, wrapper in enumerate(wrappers):
        target = wrapper_target(wrapper)
        where = f"env.wrappers[{index}]"
        factory = _locate(target, where)
        entry = {"_target_": target} if isinstance(wrapper, str) else dict(wrapper)
        try:  # the keywords are built first (nested targets too), then the wrapper on the env
            made = instantiate(entry, _partial_=True, _convert_="all")
            wrapped = made.func(env, *_tuples(made.args),
                                **{name: _tuples(value) for name, value in made.keywords.items()})
        except Exception as error:  # noqa: BLE001 - a wrapper may raise anything; one line names it
            cause = (error.__cause__ or error) if isinstance(error, InstantiationException) else error
            keywords = {k: v for k, v in entry.items() if not k.startswith("_")}
            rejected = rejected_keyword(cause, keywords, factory, target, where, skip=1)
            failed = f"{where}: {target} failed on {env_id}: {first_line(cause)}"
            raise ConfigError(rejected or failed) from None
        if not isinstance(wrapped, gym.Env):
            raise ConfigError(
                f"{where}: {target} returned a {type(wrapped).__name__}, not a Gymnasium env; "
                "env.wrappers takes wrapper classes (or functions) called with the env first"
            )
        env = wrapped
    return env
