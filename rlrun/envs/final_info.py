"""Numbers from the final `info` of each episode (`logger.info_keys`, e.g. `is_success`).

The final info is the one of the step where the episode terminated or was truncated. A value
counts when it is a real number: a bool, int or float (Python or NumPy) or a one-element
array of one. A key an episode's info lacks, NaN, and any other value are skipped; the first
value of a key that is not a number is reported once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlrun.envs.vector import FinalInfos

_NUMBERS = (bool, int, float, np.bool_, np.integer, np.floating)


def _number(value: Any) -> float | None:
    """`value` as a float, or None when it is not a real number."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())[()]
    return float(value) if isinstance(value, _NUMBERS) else None


class FinalInfo:
    """The info keys to read from each ended episode, turned into per-episode numbers.

    One instance serves a run's training and evaluation envs alike, so that a key holding
    something other than numbers is reported once (through `notify`).
    """

    def __init__(self, keys: Sequence[str], notify: Callable[[str], None] = print) -> None:
        self.keys = tuple(keys)
        """The `info` keys read (`logger.info_keys`)."""
        self.notify = notify
        """Where the one-line notice about a value that is not a number goes."""
        self._reported: set[str] = set()

    def values(self, final_infos: FinalInfos, rows: np.ndarray) -> dict[str, np.ndarray]:
        """{key: one float64 per ended env of `rows`, NaN where its final info lacks a number},
        for the keys that at least one of them holds as a number."""
        columns: dict[str, np.ndarray] = {}
        for k, row in enumerate(rows.tolist()):
            for key, value in final_infos.get(row, {}).items():
                number = _number(value)
                if number is None:
                    self._report(key, value)
                    continue
                if key not in columns:
                    columns[key] = np.full(len(rows), np.nan)
                columns[key][k] = number
        return columns

    def _report(self, key: str, value: Any) -> None:
        if key not in self._reported:
            self._reported.add(key)
            self.notify(f"logger.info_keys: an episode's final info['{key}'] is "
                        f"{type(value).__name__} {str(value)[:40]!r}, not a number; such values "
                        "are skipped")
