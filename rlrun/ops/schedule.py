"""Schedules in env steps: when a periodic event falls inside a batch of steps."""

from __future__ import annotations


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: schedules in env steps."""
    return after // every > before // every
