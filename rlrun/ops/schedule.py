"""Schedules in env steps: when a periodic event falls inside a batch of steps, and a value that
moves linearly over steps."""

from __future__ import annotations


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: schedules in env steps."""
    return after // every > before // every


def linear_schedule(start: float, end: float, duration: float, step: int) -> float:
    """Value at ``step``: linear from ``start`` (step 0) to ``end`` (``duration``), then ``end``."""
    if duration <= 0:
        return end
    return start + (end - start) * min(step / duration, 1.0)
