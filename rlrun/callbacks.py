"""User callbacks: `callbacks=[{_target_: <import path>, <keyword>: <value>}, ...]`.

Each entry is instantiated with `hydra.utils.instantiate` when the run is set up (a target that
does not import, or that has none of the hooks, is refused in one line before the run starts).
A callback defines any of these hooks; `Run` calls them, in the order of the list:

- `on_start(run_dir, cfg)`: training starts (a fresh run, and each resume), `cfg` the composed
  config (a DictConfig);
- `on_log(step, metrics)`: each training log event (`train/`, `rollout/`, `time/` metrics);
- `on_evaluation(step, metrics)`: each evaluation (`eval/` metrics);
- `on_checkpoint(step, path)`: each checkpoint written (`path`: its `last.pt`);
- `on_end(step, result)`: the run ends through `Run.finish` (not on a crash): `result` holds `status` (finished, stopped, interrupted,
  pruned), `run_dir`, `stop_reason` and, when it had one, the final evaluation's metrics.

A callback cannot change what training computes: each call gets its own deep copies of the
arguments and runs between a save and a restore of the global random number generators (Python's
`random`, numpy's, torch's CPU and CUDA ones) and torch's thread count. A hook that raises ends
the run after the current iteration, with a checkpoint, as Ctrl-C does, and the run then fails
with one line naming the callback (`CallbackError`; its traceback goes to train.log); no hook is
called after it.
"""

from __future__ import annotations

import copy
import difflib
import random
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.config import ConfigError
from rlrun.envs.imports import first_line
from rlrun.envs.wrappers import _locate, rejected_keyword

HOOKS = ("on_start", "on_log", "on_evaluation", "on_checkpoint", "on_end")
"""The methods a callback may define."""
EXAMPLE = "rlrun.callbacks.Echo"
"""A callback that ships with rlrun, named in messages."""


class CallbackError(Exception):
    """A callback's hook raised; the message names the callback, the hook and the error."""


def callback_target(entry: str | dict[str, Any]) -> str:
    """The import path of one `callbacks` entry."""
    return entry if isinstance(entry, str) else entry["_target_"]


def _check_hooks(obj: Any, where: str, name: str) -> None:
    """Raise ConfigError when `obj` (a callback or its class) has none of the HOOKS."""
    if any(callable(getattr(obj, hook, None)) for hook in HOOKS):
        return
    own = [attr for attr in dir(obj) if attr.startswith("on_")]
    close = [match for attr in own for match in difflib.get_close_matches(attr, HOOKS, n=1)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"{where}: {name} has none of the hooks {', '.join(HOOKS)}{hint}; define "
                      "one, e.g. `def on_evaluation(self, step, metrics)`")


def check_callbacks(entries: Sequence[Any]) -> None:
    """Import each entry's target (without instantiating it); raise ConfigError when one does not
    import, or is a class with none of the HOOKS."""
    for index, entry in enumerate(entries):
        where, target = f"callbacks[{index}]", callback_target(entry)
        factory = _locate(target, where, "callback class or function", EXAMPLE)
        if isinstance(factory, type):
            _check_hooks(factory, where, target)


def _name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def make_callbacks(entries: Sequence[Any], objects: Sequence[Any] = ()) -> Callbacks:
    """The callbacks of the config's `entries` (instantiated), then the ready-made `objects`.

    Raises ConfigError (one line) when an entry fails to import or to instantiate, or a
    callback has none of the HOOKS.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    made = []
    for index, entry in enumerate(entries):
        where, target = f"callbacks[{index}]", callback_target(entry)
        factory = _locate(target, where, "callback class or function", EXAMPLE)
        spec = {"_target_": target} if isinstance(entry, str) else dict(entry)
        try:
            obj = instantiate(spec, _convert_="all")
        except Exception as error:  # noqa: BLE001 - a constructor may raise anything; one line names it
            cause = (error.__cause__ or error) if isinstance(error, InstantiationException) else error
            keywords = {key: value for key, value in spec.items() if not key.startswith("_")}
            rejected = rejected_keyword(cause, keywords, factory, target, where)
            raise ConfigError(rejected or f"{where}: {target} failed: {first_line(cause)}") from None
        _check_hooks(obj, where, target)
        made.append((target, obj))
    for obj in objects:
        _check_hooks(obj, "callbacks", _name(obj))
        made.append((_name(obj), obj))
    return Callbacks(made)


@contextmanager
def isolated() -> Iterator[None]:
    """Restore the global RNG states (numpy's cached Gaussian included) and torch's thread count on
    leaving, whatever ran inside (a callback's hook, a run started from Python)."""
    import torch  # here: `rlrun --help` checks callbacks without loading torch

    python, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


class Callbacks:
    """The run's callbacks, each a (name, object) pair, called in order."""

    def __init__(self, callbacks: list[tuple[str, Any]]) -> None:
        self.callbacks = callbacks
        self.failure: str | None = None
        """`callback <name>.<hook> raised <error>` once a hook raised; no hook is called after."""
        self.failure_trace: str | None = None
        """The traceback of that error."""

    def call(self, hook: str, *args: Any) -> None:
        """Call `hook` of each callback that defines it, with its own copies of `args`, its RNG
        draws and thread changes undone; a raising hook is kept in `failure`."""
        for name, obj in self.callbacks:
            method = getattr(obj, hook, None)
            if self.failure is not None or not callable(method):
                continue
            with isolated():
                try:
                    method(*copy.deepcopy(args))
                except Exception as error:  # noqa: BLE001 - a callback may raise anything
                    self.failure = f"callback {name}.{hook} raised {type(error).__name__}: {first_line(error)}"
                    self.failure_trace = traceback.format_exc()


class Echo:
    """Prints a line at the start, at each evaluation and checkpoint, and at the end: a callback
    to start one of your own from."""

    def __init__(self, prefix: str = "callback") -> None:
        self.prefix = prefix

    def on_start(self, run_dir: Path, cfg: Any) -> None:
        print(f"[{self.prefix}] start: {cfg.algo.name} on {cfg.env.id} in {run_dir}")

    def on_evaluation(self, step: int, metrics: dict[str, float]) -> None:
        print(f"[{self.prefix}] step {step}: eval return {metrics['eval/return_mean']:.2f}")

    def on_checkpoint(self, step: int, path: Path) -> None:
        print(f"[{self.prefix}] step {step}: checkpoint {path}")

    def on_end(self, step: int, result: dict[str, Any]) -> None:
        print(f"[{self.prefix}] end at step {step}: {result['status']}")
