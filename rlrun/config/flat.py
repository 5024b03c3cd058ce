"""Nested plain dicts (a config as `OmegaConf.to_container` gives it) by dotted key."""

from __future__ import annotations

from typing import Any


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested dicts by dotted key (lists are leaves)."""
    if isinstance(node, dict):
        items: dict[str, Any] = {}
        for key, value in node.items():
            items.update(flatten(value, f"{prefix}{key}."))
        return items if items or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}
