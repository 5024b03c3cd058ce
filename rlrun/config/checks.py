"""The error of a user's mistake in a config and the checks that raise it (the config schemas'
`__post_init__`, and algorithms' own, through `rlrun.config`)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake in the configuration: the message names the key and the fix."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_targets(key: str, what: str, entries: list, example: str) -> None:
    """Each entry of the list at `key` names a class to make: `{_target_: <import path>, ...}` or
    the import path alone (`example` shows one)."""
    for index, entry in enumerate(entries):
        target = entry.get("_target_") if isinstance(entry, dict) else entry
        check(
            isinstance(target, str) and target != "",
            f"{key}[{index}]={entry!r} names no {what}: give {{_target_: <import path>, "
            f"<keyword>: <value>}} or the import path, e.g. {example}",
        )


def check_discount(name: str, value: float) -> None:
    check(0.0 < value <= 1.0, f"{name}={value} is outside (0, 1]; use e.g. {name}=0.99")
