"""What a person reads of a run's log (`rlrun.tracking.logger`): the status line (`Status`), the console
that shows it (a progress bar and metric tables on a terminal, plain lines otherwise) and
train.log, the same lines as plain text.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

_BAR_KEYS = {"rollout/ep_return_mean": "return", "eval/return_mean": "eval"}
"""Metrics shown on the progress bar, with their short labels."""


class TextLog:
    """train.log: the console's messages and status lines as plain text, flushed line by line."""

    name = "train.log"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", buffering=1)

    def write(self, text: str) -> None:
        """Append one time-stamped line (after `close` too: a last word about how the run ended)."""
        if self._file.closed:
            self._file = self.path.open("a", buffering=1)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._file.write(f"[{stamp}] {text}\n")

    def close(self) -> None:
        self._file.close()


def _duration(seconds: float) -> str:
    """`1h02m`, `3m42s` or `12s`."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


ETA_AFTER_S = 10.0
"""Seconds of training (after `Status.measure_from`) before the time left is estimated."""


def spread_text(mean: float, spread: float) -> str:
    """`spread` to the decimal places `mean` is shown with (4 significant digits), so that float
    noise such as 1.11e-16 reads 0: `0.91 ± 0`, `-930.3 ± 349.3`."""
    digits = max(0, 3 - math.floor(math.log10(abs(mean)))) if mean else 3
    rounded = round(spread, digits)
    return f"{rounded:.{digits}f}".rstrip("0").rstrip(".") if rounded else "0"


class Status:
    """The numbers a person follows: steps, throughput, time left, training and eval return (with
    the means of `info_keys` beside them)."""

    def __init__(self, total_steps: int, start_step: int, info_keys: tuple[str, ...] = ()) -> None:
        self.total = total_steps
        self.step = start_step
        self.sps: float | None = None
        self.measure_from = start_step
        """The step from which the time left is estimated: steps before it (a random warm-up
        before `learning_starts`) run much faster than training and would promise too little."""
        self._mark: tuple[float, int] | None = None
        self.values: dict[str, float] = {}
        self.eval_step: int | None = None
        self.info_keys = info_keys
        self._keys = {*_STATUS_KEYS, *(f"{prefix}{key}" for key in info_keys
                                       for prefix in ("rollout/", "eval/"))}

    def record(self, metrics: dict[str, float], step: int) -> None:
        self.step = max(self.step, step)
        if self._mark is None and step >= self.measure_from:
            self._mark = (time.monotonic(), step)
        if "time/sps" in metrics:
            self.sps = metrics["time/sps"]
        if "eval/return_mean" in metrics:
            self.eval_step = step
            for key in self.info_keys:  # an evaluation whose episodes reported none shows none
                self.values.pop(f"eval/{key}", None)
        self.values.update((k, v) for k, v in metrics.items() if k in self._keys)

    def line(self) -> str:
        """`step 225,280/500,000 (45%) | 1,234 sps | ETA 3m42s | return 245.3 | eval 500.0 ± 0.0 @
        200,000`, with `(is_success 0.4)` after a return when the episodes report an info key."""
        percent = min(100.0, 100.0 * self.step / self.total)
        parts = [f"step {self.step:,}/{self.total:,} ({percent:.0f}%)"]
        if self.sps:
            parts.append(f"{self.sps:,.0f} sps")
        if self.eta() is not None:
            parts.append(f"ETA {_duration(self.eta())}")
        if "rollout/ep_return_mean" in self.values:
            returned = self.values["rollout/ep_return_mean"]
            parts.append(f"return {returned:.4g}{self._infos('rollout/')}")
        if "eval/return_mean" in self.values:
            spread = self.values.get("eval/return_std", 0.0)
            mean = self.values["eval/return_mean"]
            parts.append(f"eval {mean:.4g} ± {spread_text(mean, spread)}{self._infos('eval/')} "
                         f"@ {self.eval_step:,}")
        return " | ".join(parts)

    def eta(self) -> float | None:
        """Seconds left at the speed measured since `measure_from`; None before `ETA_AFTER_S` of
        it, or once the budget is reached."""
        if self._mark is None or self.step >= self.total:
            return None
        since, first = self._mark
        seconds = time.monotonic() - since
        if seconds < ETA_AFTER_S or self.step <= first:
            return None
        return (self.total - self.step) * seconds / (self.step - first)

    def _infos(self, prefix: str) -> str:
        shown = [f"{key} {self.values[prefix + key]:.3g}" for key in self.info_keys
                 if prefix + key in self.values]
        return f" ({', '.join(shown)})" if shown else ""


_STATUS_KEYS = ("rollout/ep_return_mean", "eval/return_mean", "eval/return_std")
"""Metrics the status line shows."""


class LogConsole:
    """Progress bar and metric tables on a terminal; one status line per interval otherwise.
    Every line starts with `label` (a job of a sweep: `[job 3 algo=a2c,seed=1]`) when it is set."""

    def __init__(self, status: Status, label: str = "") -> None:
        self._rich = Console()
        self.tty = self._rich.is_terminal
        self._status = status
        self.label = label
        self._pending: dict[str, float] = {}
        self._refreshed = 0.0
        self._progress: Progress | None = None
        if self.tty:
            self._progress = Progress(
                TextColumn(f"[bold]{escape(label) or 'train'}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]} sps"),
                TextColumn("{task.fields[eta]}"),
                TextColumn("{task.fields[info]}"),
                console=self._rich,
                auto_refresh=False,
            )
            self._task = self._progress.add_task("train", total=status.total, completed=status.step,
                                                 sps="-", eta="", info="")
            self._progress.start()

    def record(self, metrics: dict[str, float]) -> None:
        self._pending.update(metrics)

    def refresh(self) -> None:
        if self._progress is not None and time.monotonic() - self._refreshed >= 0.25:
            self._refresh_bar()

    def labelled(self, text: str) -> str:
        """`text` with the label before each of its lines."""
        if not self.label:
            return text
        return "\n".join(f"{self.label} {line}" for line in text.splitlines())

    def print(self, text: str) -> None:
        if self.tty:
            self._rich.print(self.labelled(text), markup=False, highlight=False)
        else:
            self._print_lines(text)

    def _print_lines(self, text: str) -> None:
        """Labelled plain lines, one write each: a pipe that parallel jobs share keeps a write
        of under 4 KiB whole, so jobs' lines interleave but never break inside a line."""
        for line in self.labelled(text).splitlines():
            sys.stdout.write(f"{line}\n")
            sys.stdout.flush()

    def print_renderable(self, renderable: Any, plain: str) -> None:
        """A rich renderable on a terminal, its `plain` text otherwise (labelled line by line)."""
        if self.tty:
            self._rich.print(renderable)
        else:
            self._print_lines(plain)

    def interval(self) -> None:
        """The status line (a table of the metrics since the last interval, on a terminal)."""
        items = sorted(self._pending.items())
        self._pending.clear()
        if not self.tty:
            self._print_lines(self._status.line())
            return
        columns = 3 if len(items) > 8 else 2
        rows = -(-len(items) // columns)
        table = Table(title=escape(self.labelled(self._status.line())), box=box.SIMPLE, show_header=False, title_justify="left")
        for _ in range(columns):
            table.add_column(style="cyan")
            table.add_column(justify="right")
        for row in range(rows):  # column-major, so sorted keys read down each column
            cells: list[str] = []
            for i in range(row, columns * rows, rows):
                cells += [items[i][0], f"{items[i][1]:.4g}"] if i < len(items) else ["", ""]
            table.add_row(*cells)
        self._rich.print(table)

    def close(self) -> None:
        if self._progress is not None:
            self._refresh_bar()
            self._progress.stop()

    def _refresh_bar(self) -> None:
        assert self._progress is not None
        self._refreshed = time.monotonic()
        values = self._status.values
        info = "  ".join(f"{label} {values[key]:.4g}" for key, label in _BAR_KEYS.items() if key in values)
        sps = f"{self._status.sps:.0f}" if self._status.sps else "-"
        eta = self._status.eta()
        self._progress.update(self._task, completed=min(self._status.step, self._status.total), sps=sps,
                              eta="" if eta is None else f"ETA {_duration(eta)}", info=info, refresh=True)
