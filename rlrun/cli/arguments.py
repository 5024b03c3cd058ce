"""Command-line arguments as users type them, rewritten into overrides Hydra's parser takes.

- `resume=<path>` is short for `resume.path=<path>`.
- Path values (`checkpoint=`, `resume=`, `hydra.run.dir=`, ...) are quoted, so that the run dirs
  rlrun prints, such as `outputs/multirun/.../algo=a2c,env=CartPole-v1,seed=0`, can be pasted
  back as they are: unquoted, their `=` and `,` would be read as Hydra syntax.
- Integral floats for integer keys (`total_timesteps=2e5`) become integers.
- A bare path is the checkpoint of `rlrun-eval <path>`; `rlrun <path>` says how to use it.
- `rlrun env.entry_point=<module>:<Class>` without `env=` gets `env=<Class>`, the name it is
  registered under (`rlrun.envs.imports`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from functools import cache
from pathlib import Path

from rlrun.config import ConfigError

PATH_KEYS = (
    "checkpoint",
    "resume.path",
    "hydra.run.dir",
    "hydra.sweep.dir",
    "algo.expert",
    "algo.dataset",
    "network.path",
)
"""Keys whose values are file system paths: quoted before Hydra parses them."""

FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
"""Hydra command-line flags whose next argument is their value, not an override."""

PRINTING_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--shell-completion",
    "-sc",
    "--info",
    "-i",
}
"""Hydra command-line flags that print and exit: nothing after them is checked."""

_KEY = re.compile(r"(?P<prefix>\+{0,2}|~)(?P<key>[\w.\-/@]+)=(?P<value>.*)", re.DOTALL)
_DELETION = re.compile(r"~\w+(\.\w+)+")
_NUMBER = re.compile(r"[+-]?(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?")


def key_of(override: str) -> str:
    """The key of an override line, without its `+`, `++` or `~` (`+algo.x=1` -> `algo.x`)."""
    return re.sub(r"^(\+{1,2}|~)", "", override.partition("=")[0])


def _quote(value: str) -> str:
    """`value` as a single-quoted Hydra string,
    backslashes before a quote or at the end doubled."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value  # already quoted by the user
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


@cache
def integer_keys() -> frozenset[str]:
    """Dotted keys of every integer field of the training and evaluation schemas (all algos)."""
    from rlrun.config import EvalRunConfig, TrainConfig
    from rlrun.registry import schemas

    keys: set[str] = set()

    def walk(schema: type, prefix: str) -> None:
        hints = typing.get_type_hints(schema)
        for field in dataclasses.fields(schema):
            hint = hints[field.name]
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            options = [
                t for t in (typing.get_args(hint) if union else (hint,)) if t is not type(None)
            ]
            nested = [t for t in options if dataclasses.is_dataclass(t)]
            if nested:
                walk(nested[0], f"{prefix}{field.name}.")
            elif int in options:
                keys.add(prefix + field.name)

    walk(TrainConfig, "")
    walk(EvalRunConfig, "")
    for schema in schemas().values():
        walk(schema, "algo.")
    return frozenset(keys)


def _integral(value: str) -> str:
    """`2e5` -> `200000` (and each item of a sweep `1e5,2e5`); anything else unchanged."""
    items = value.split(",")
    converted = []
    for item in items:
        if not item or not _NUMBER.fullmatch(item) or not any(c.isdigit() for c in item):
            return value
        try:
            number = float(item.replace("_", ""))
        except ValueError:
            return value
        if not number.is_integer():
            return value
        converted.append(str(int(number)))
    return ",".join(converted)


def looks_like_path(arg: str, must_exist: bool) -> bool:
    """Whether `arg` is a file system path rather than an override (`key=value`, `~key.name`):
    no `=`, or a `/` before the first `=` that is not a Hydra group (`hydra/launcher=...`)."""
    match = _KEY.fullmatch(arg)
    if match is None:
        deletion = _DELETION.fullmatch(arg) is not None  # ~env.kwargs.name
        path_like = ("/" in arg or arg in (".", "..") or not must_exist) and not deletion
    else:
        path_like = "/" in match.group("key") and not match.group("key").startswith("hydra/")
    return path_like and (not must_exist or Path(arg).expanduser().exists())


def rewrite(argv: list[str], positional_key: str | None = None) -> list[str]:
    """The overrides and flags of `argv` in the form Hydra parses (see the module docstring).

    `positional_key`: the key a bare path stands for (`checkpoint` for rlrun-eval); without
    one, a bare path is refused with the commands that take it.
    """
    rewritten, value_of_flag = [], False
    for arg in argv:
        if value_of_flag or arg.startswith("-"):
            value_of_flag = not value_of_flag and arg in FLAGS_WITH_VALUE
            rewritten.append(arg)
            continue
        if looks_like_path(arg, must_exist=positional_key is None):
            if positional_key is None:
                raise ConfigError(
                    f"{arg} is a path, not key=value: continue that run with `rlrun resume={arg}`, "
                    f"or evaluate it with `rlrun-eval {arg}`"
                )
            arg = f"{positional_key}={arg}"
        match = _KEY.fullmatch(arg)
        if match is None:
            rewritten.append(arg)
            continue
        prefix, key, value = match.group("prefix", "key", "value")
        if key == "resume":
            key = "resume.path"
        if key in PATH_KEYS and value not in ("", "null"):
            value = _quote(value)
        elif key in integer_keys():
            value = _integral(value)
        rewritten.append(f"{prefix}{key}={value}")
    return rewritten if positional_key else _with_entry_point_name(rewritten)


def _with_entry_point_name(overrides: list[str]) -> list[str]:
    """`overrides` with `env=<Class>` added when `env.entry_point=<module>:<Class>` has no `env=`."""
    from rlrun.envs.imports import entry_point_name

    keys = [line.partition("=")[0].lstrip("+") for line in overrides]
    if "env.entry_point" not in keys or "env" in keys:
        return overrides
    at = keys.index("env.entry_point")
    entry_point = overrides[at].partition("=")[2]
    if entry_point in ("", "null"):
        return overrides
    return [*overrides[: at + 1], f"env={entry_point_name(entry_point)}", *overrides[at + 1 :]]


def parse_error(overrides: list[str], error: Exception) -> str:
    """One line for overrides Hydra's parser refused, naming the argument and how to write it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as single:
            detail = str(single).strip().splitlines()[0]
            return (
                f"cannot parse `{override}` ({detail}); write it as key=value, and quote a value "
                f"that holds = , [ ] or spaces: key='value'"
            )
    return f"cannot parse overrides: {str(error).strip().splitlines()[0]}"
