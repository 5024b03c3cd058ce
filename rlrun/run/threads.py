"""Torch's CPU thread count: fixed, or chosen while training by timing (`torch_threads=auto`).

More threads speed up the large matrix products of 256-256 networks (a SAC Hopper update:
about 1.3x with two threads on a quiet 2-core machine), do nothing for 64-64 ones, and make
every update several times slower while another process holds a core, because each
parallel op then waits for a thread that is not running (4x for that SAC update).
`ThreadGovernor` measures which case a run is in instead of guessing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from rlrun.config import AUTO_THREADS


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a Slurm allocation)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ThreadGovernor:
    """Runs training on 1 or `max_threads` torch threads, whichever gives more env steps per second.

    Training calls `observe(step)` once per iteration. Wall time is cut into windows of at
    least `window_s` seconds, less any time spent inside `excluded()` (evaluations and
    checkpoints, which would blur the comparison). Times per step on more threads count
    `margin` higher: extra threads must earn the cores they take from everything else. A
    comparison times the other count for one window and decides there if that window was
    worse than the chosen count's last one, or `alarm` times better; otherwise it times the
    chosen count and the other once more each and keeps the better of the two pairs. The
    choice is then kept for a hold of `min_hold` windows, doubled (up to `max_hold`) each
    time a comparison confirms it. A window `alarm` times slower than the choice's
    reference starts a comparison at once (another process took a core, or updates began).

    The count changes results bitwise for some networks (the order of floating-point sums
    differs), so `deterministic=true` refuses `torch_threads=auto`.
    """

    def __init__(
        self,
        max_threads: int,
        window_s: float = 0.5,
        margin: float = 0.1,
        alarm: float = 1.5,
        min_hold: int = 8,
        max_hold: int = 128,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        if max_threads < 2:
            raise ValueError(f"a governor needs at least 2 threads to choose from, got {max_threads}")
        self.counts = (1, max_threads)
        self.window_s, self.margin, self.alarm = window_s, margin, alarm
        self.min_hold, self.max_hold = min_hold, max_hold
        self._clock, self._set_threads = clock, set_threads
        self.chosen = 1
        """The thread count the last comparison chose."""
        self.threads = 1
        """The thread count in use now."""
        self.comparisons = 0
        """Comparisons run so far."""
        self._hold, self._holds_left = min_hold, 2  # the first comparison starts after 2 windows
        self._reference: float | None = None
        self._probe: list[tuple[int, float]] | None = None  # (threads, seconds per step) of this comparison
        self._excluded = 0.0
        self._window_start, self._window_step = self._clock(), None
        set_threads(1)

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Leave the time spent inside out of the current window."""
        start = self._clock()
        try:
            yield
        finally:
            self._excluded += self._clock() - start

    def observe(self, step: int) -> None:
        """Count the env steps done so far; ends a window when `window_s` has passed."""
        if self._window_step is None:
            self._window_step = step
            return
        seconds = self._clock() - self._window_start - self._excluded
        if seconds < self.window_s:
            return
        steps = step - self._window_step
        self._window_start, self._window_step, self._excluded = self._clock(), step, 0.0
        if steps > 0:
            self._end_window(seconds / steps)

    def _end_window(self, per_step: float) -> None:
        if self._probe is not None:
            self._probe.append((self.threads, per_step))
            self._continue_comparison()
            return
        self._holds_left -= 1
        slowed = self._reference is not None and per_step > self.alarm * self._reference
        if self._holds_left <= 0 or slowed:
            self.comparisons += 1
            self._probe = [(self.threads, per_step)]
            self._use(self._other())

    def _continue_comparison(self) -> None:
        probe = [(threads, self._cost(threads, seconds)) for threads, seconds in self._probe]
        if len(probe) == 2:
            mine, theirs = probe[0][1], probe[1][1]
            if theirs >= mine or self.alarm * theirs < mine:
                self._decide(switch=theirs < mine)
            else:
                self._use(self.chosen)
        elif len(probe) == 3:
            self._use(self._other())
        else:
            mine, theirs = probe[0][1] + probe[2][1], probe[1][1] + probe[3][1]
            self._decide(switch=theirs < mine)

    def _cost(self, threads: int, per_step: float) -> float:
        """Seconds per step, counted `margin` higher on more than one thread."""
        return per_step * (1.0 + self.margin) if threads > 1 else per_step

    def _decide(self, switch: bool) -> None:
        probe, self._probe = self._probe, None
        if switch:
            self.chosen = self._other()
            self._hold = self.min_hold
        else:
            self._hold = min(2 * self._hold, self.max_hold)
        times = [seconds for threads, seconds in probe if threads == self.chosen]
        self._reference = sum(times) / len(times)
        self._holds_left = self._hold
        self._use(self.chosen)

    def _other(self) -> int:
        return self.counts[1] if self.chosen == self.counts[0] else self.counts[0]

    def _use(self, threads: int) -> None:
        if threads != self.threads:
            self._set_threads(threads)
            self.threads = threads


class FixedThreads:
    """A fixed thread count, behind the governor's interface."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        self.threads = threads

    def excluded(self) -> AbstractContextManager[None]:
        return nullcontext()

    def observe(self, step: int) -> None:
        """Nothing to choose."""


AUTO_MAX_THREADS = 4
"""Most threads `auto` tries: a 256-row batch through 256-wide layers splits into few useful panels."""


def thread_control(setting: int | str) -> ThreadGovernor | FixedThreads:
    """The thread control for a `torch_threads` value: a count, or `auto`."""
    if setting == AUTO_THREADS:
        cores = min(usable_cores(), AUTO_MAX_THREADS)
        return ThreadGovernor(cores) if cores >= 2 else FixedThreads(1)
    return FixedThreads(int(setting))
