"""Stop signals of a run: Ctrl-C, SIGTERM, and the SIGUSR1/SIGUSR2 that cluster schedulers send
before a time limit or preemption.

The first signal ends training after the current iteration, with a checkpoint (`Run.finish`
raises `RunInterrupted`); a second one stops at once, without a traceback, leaving the last
checkpoint intact.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""Signals that end training after the current iteration with a checkpoint."""


class RunInterrupted(Exception):
    """Training stopped on signal `signum` after writing a checkpoint; exit code 128 + signum."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def pass_on(self) -> None:
        """Re-deliver SIGUSR1/SIGUSR2 to the handler installed before Run's, if there was one.

        Under submitit that handler requeues the job, which then resumes from the checkpoint.
        """
        handler = signal.getsignal(self.signum)
        if self.signum in (signal.SIGUSR1, signal.SIGUSR2) and callable(handler):
            signal.raise_signal(self.signum)


class StopSignals:
    """The handlers of `STOP_SIGNALS` while a run trains (installed on creation, in the main
    thread only: Python lets no other thread install them), until `restore`.

    `kept()` says, for the line of a second signal, what the run kept and where (e.g. `the
    checkpoint of step 512 is kept in <run dir>`).
    """

    def __init__(self, kept: Callable[[], str]) -> None:
        self.signum: int | None = None
        """The first stop signal that arrived; None until one does."""
        self._kept = kept
        in_main_thread = threading.current_thread() is threading.main_thread()
        self._previous = (
            {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS} if in_main_thread else {}
        )

    @property
    def received(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signum = signum
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_second_signal)

    def _on_second_signal(self, signum: int, frame: Any) -> None:
        """A second signal stops at once, without a traceback; the last checkpoint stays intact."""
        print(f"rlrun: second {signal.Signals(signum).name}: stopped at once; {self._kept()}",
              file=sys.stderr)
        raise SystemExit(128 + signum)

    def stop_if_signalled(self, when: str) -> None:
        """Raise RunInterrupted, writing no checkpoint, when a stop signal arrived `when` (a set-up
        phase that has no completed iteration to keep)."""
        if self.signum is not None:
            raise RunInterrupted(
                f"{signal.Signals(self.signum).name} {when}: no iteration had completed, so "
                "nothing was kept; re-running the command starts again", self.signum,
            )

    def interrupted(self, what: str) -> RunInterrupted:
        """The exception that ends a run the signal stopped (`what`: where, and what was kept)."""
        return RunInterrupted(f"{signal.Signals(self.signum).name} {what}", self.signum)

    def restore(self) -> None:
        """Put back the handlers installed before these (safe to call twice)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
