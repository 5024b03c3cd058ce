"""Envs made by a Python callable: `rlrun.train(env=<callable>)`, `rlrun.load(path, env=...)`.

The callable (a `gymnasium.Env` subclass, or a function that returns a new env) is registered in
Gymnasium's registry under an id while a call uses it (`registered`): its own name for a new run,
the checkpoint's env id when a run continues. Composing, validation, the training and the
evaluation envs then make it through `gymnasium.make` like any registered id (`env.kwargs` are
its keyword arguments). A checkpoint cannot hold the callable: it records where the callable came
from (`describe`), and a process resumes or loads such a checkpoint only while it has registered
a callable under its env id again (`is_registered`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from rlrun.config import ConfigError

_ACTIVE: dict[str, Callable[..., gym.Env]] = {}
"""The ids registered by `registered` now, and their callables."""


def check_callable(make: object) -> None:
    """Refuse an `env=` value that is not a callable making a new env."""
    if isinstance(make, gym.Env) or not callable(make):
        raise ConfigError(
            f"env={make!r} is not an env id nor a callable: give a Gymnasium id (env='CartPole-v1'), "
            "or what makes a new env on each call (env=MyEnv, the gymnasium.Env subclass, or a "
            "function returning one); rlrun makes several envs (training, evaluation)"
        )


def _target(make: Callable[..., gym.Env]) -> object:
    """The function or class behind `make` (a functools.partial's function)."""
    return getattr(make, "func", make)


def env_id_of(make: Callable[..., gym.Env]) -> str:
    """The id a new run registers `make` under: its name (`make_maze`, `MazeEnv`)."""
    name = getattr(_target(make), "__name__", type(make).__name__)
    return re.sub(r"\W+", "_", name).strip("_") or "PythonEnv"


def describe(make: Callable[..., gym.Env]) -> str:
    """Where `make` comes from, as checkpoints record it: `<module>:<qualified name>`."""
    target = _target(make)
    qualname = getattr(target, "__qualname__", type(target).__qualname__)
    return f"{getattr(target, '__module__', None) or '?'}:{qualname}"


def is_registered(env_id: str) -> bool:
    """Whether a callable given in Python is registered under `env_id` now."""
    return env_id in _ACTIVE


@contextmanager
def registered(env_id: str, make: Callable[..., gym.Env]) -> Iterator[None]:
    """Register `make` under `env_id` in Gymnasium's registry for the duration of the block; what
    the id made before (none, or another callable of an enclosing block) is restored after.

    Raises:
        ConfigError: `env_id` is an id that Gymnasium's registry holds (an env of a package).
    """
    from rlrun.envs.factory import forget_spaces

    check_callable(make)
    previous = gym.registry.get(env_id)
    if previous is not None and env_id not in _ACTIVE:
        raise ConfigError(
            f"env={describe(make)} would be registered as '{env_id}', an id Gymnasium already "
            f"has ({previous.entry_point}): rename the function or class"
        )
    before = _ACTIVE.get(env_id)
    gym.registry[env_id] = EnvSpec(id=env_id, entry_point=make)
    _ACTIVE[env_id] = make
    forget_spaces()  # the id may have made another env (of another callable) before
    try:
        yield
    finally:
        if before is None:
            del gym.registry[env_id], _ACTIVE[env_id]
        else:
            gym.registry[env_id], _ACTIVE[env_id] = previous, before
        forget_spaces()
