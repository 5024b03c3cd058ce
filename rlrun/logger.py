"""Metric logging: metrics.jsonl, TensorBoard, Weights & Biases and a rich console.

Every back-end receives every event. A back-end that fails (at start or while logging) is
reported once and switched off; training goes on with the others.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rlrun.config import LoggerConfig

_log = logging.getLogger("rlrun")

_BAR_KEYS = {"rollout/ep_return_mean": "return", "eval/return_mean": "eval"}
"""Metrics shown on the progress bar, with their short labels."""


class _JsonlSink:
    """Appends one JSON object per event to metrics.jsonl, flushed at most once a second."""

    name = "metrics.jsonl"

    def __init__(self, path: Path, start_step: int) -> None:
        resumed = start_step > 0 and path.exists()
        self.previous_time = _truncate(path, start_step) if resumed else 0.0
        self._file = path.open("a", buffering=1 << 16)
        self._flushed = time.monotonic()

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        self._file.write(json.dumps({"step": step, "time": round(elapsed, 3), **metrics}) + "\n")
        if time.monotonic() - self._flushed > 1.0:
            self._file.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self._file.close()


def _truncate(path: Path, start_step: int) -> float:
    """Drops the lines after `start_step` (atomically); returns the last kept wall time (s)."""
    last_time = 0.0
    tmp = path.with_name(path.name + ".tmp")
    with path.open() as src, tmp.open("w") as dst:
        for line in src:
            try:
                record = json.loads(line)
                keep = record["step"] <= start_step
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash mid-write
            if keep:
                dst.write(line.rstrip("\n") + "\n")
                last_time = float(record.get("time", last_time))
    os.replace(tmp, path)
    return last_time


class _TensorBoardSink:
    """Scalars under run_dir/tb; events after `start_step` of a previous attempt are purged."""

    name = "tensorboard"

    def __init__(self, log_dir: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(log_dir), purge_step=start_step or None)

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._writer.close()


class _WandbSink:
    """A Weights & Biases run under run_dir/wandb, resumed when its id is given."""

    name = "wandb"

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, config: dict, run_id: str | None, run_name: str
    ) -> None:
        import wandb

        self._run = wandb.init(
            project=cfg.wandb_project,
            entity=cfg.wandb_entity,
            dir=str(run_dir),
            config=config,
            id=run_id,  # None: wandb generates one (wandb.util.generate_id is gone in 0.31)
            resume="allow",
            name=run_name or None,
        )
        self.id: str = self._run.id

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        self._run.log(metrics, step=step)

    def close(self) -> None:
        self._run.finish()


class _Console:
    """Progress bar and metric tables on a terminal; one plain line per interval otherwise."""

    def __init__(self, total_steps: int, start_step: int, every_steps: int) -> None:
        self._rich = Console()
        self.tty = self._rich.is_terminal
        self._total, self._start, self._every = total_steps, start_step, every_steps
        self._t0 = time.monotonic()
        self._step = start_step
        self._next_table = (start_step // every_steps + 1) * every_steps
        self._pending: dict[str, float] = {}
        self._bar_values: dict[str, float] = {}
        self._refreshed = 0.0
        self._progress: Progress | None = None
        if self.tty:
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]} sps"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self._rich,
                auto_refresh=False,
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step,
                                                 sps="-", info="")
            self._progress.start()

    def record(self, metrics: dict[str, float], step: int) -> None:
        self._pending.update(metrics)
        self._bar_values.update((k, v) for k, v in metrics.items() if k in _BAR_KEYS)
        self._step = max(self._step, step)

    def progress(self, step: int) -> None:
        self._step = max(self._step, step)
        if step >= self._next_table:
            self._next_table = (step // self._every + 1) * self._every
            self._table()
        if self._progress is not None and time.monotonic() - self._refreshed >= 0.25:
            self._refresh_bar()

    def print(self, text: str) -> None:
        if self.tty:
            self._rich.print(text, markup=False)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._pending:
            self._table()
        if self._progress is not None:
            self._refresh_bar()
            self._progress.stop()

    def _refresh_bar(self) -> None:
        assert self._progress is not None
        self._refreshed = time.monotonic()
        info = "  ".join(f"{_BAR_KEYS[k]} {v:.4g}" for k, v in self._bar_values.items())
        self._progress.update(self._task, completed=self._step, sps=f"{self._sps():.0f}",
                              info=info, refresh=True)

    def _sps(self) -> float:
        return (self._step - self._start) / max(time.monotonic() - self._t0, 1e-9)

    def _table(self) -> None:
        header = f"step {self._step}/{self._total} | sps {self._sps():.0f}"
        items = sorted(self._pending.items())
        self._pending.clear()
        if not self.tty:
            print(" | ".join([header, *(f"{k} {v:.4g}" for k, v in items)]), flush=True)
            return
        columns = 3 if len(items) > 8 else 2
        rows = -(-len(items) // columns)
        table = Table(title=header, box=box.SIMPLE, show_header=False, title_justify="left")
        for _ in range(columns):
            table.add_column(style="cyan")
            table.add_column(justify="right")
        for row in range(rows):  # column-major, so sorted keys read down each column
            cells: list[str] = []
            for i in range(row, columns * rows, rows):
                cells += [items[i][0], f"{items[i][1]:.4g}"] if i < len(items) else ["", ""]
            table.add_row(*cells)
        self._rich.print(table)


class Logger:
    """Sends metric events to every enabled back-end and shows progress on the console.

    Args:
        cfg: Which back-ends are on and the console table interval.
        run_dir: Run directory; metrics.jsonl, tb/ and wandb/ go there.
        total_steps: Training budget (env steps), for the progress bar.
        config: Resolved run config, stored with the wandb run.
        start_step: Env step a resumed run starts from (0 for a fresh run).
        wandb_id: Id of the wandb run to resume; a new one is generated when None.
        run_name: Display name of the wandb run.
    """

    def __init__(
        self,
        cfg: LoggerConfig,
        run_dir: Path,
        total_steps: int,
        config: dict,
        *,
        start_step: int = 0,
        wandb_id: str | None = None,
        run_name: str = "",
    ) -> None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._t0 = time.monotonic()
        self._console = _Console(total_steps, start_step, cfg.every_steps) if cfg.console else None
        self._sinks: list[Any] = []
        jsonl = (self._start("metrics.jsonl", _JsonlSink, run_dir / "metrics.jsonl", start_step)
                 if cfg.jsonl else None)
        self._time_offset = jsonl.previous_time if jsonl else 0.0
        if cfg.tensorboard:
            self._start("tensorboard", _TensorBoardSink, run_dir / "tb", start_step)
        wandb = (self._start("wandb", _WandbSink, cfg, run_dir, config, wandb_id, run_name)
                 if cfg.wandb else None)
        self.wandb_id: str | None = wandb.id if wandb else None

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Records one event at global env step `step` (tensors and numpy scalars accepted)."""
        values = {key: float(value) for key, value in metrics.items()}
        elapsed = self._time_offset + time.monotonic() - self._t0
        for sink in list(self._sinks):
            self._guarded(sink.name, sink.log, values, int(step), elapsed)
        if self._console is not None:
            self._console.record(values, step)

    def progress(self, step: int) -> None:
        """Updates the progress bar (throttled) and prints a table every `every_steps` steps."""
        if self._console is not None:
            self._console.progress(step)

    def message(self, text: str) -> None:
        """Prints one human-readable line and logs it at INFO on the 'rlrun' logger."""
        if self._console is not None:
            self._console.print(text)
        _log.info(text)

    def close(self) -> None:
        """Stops the progress bar and flushes and closes every back-end; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._console is not None:
            self._console.close()
        for sink in list(self._sinks):
            self._guarded(sink.name, sink.close)
        self._sinks.clear()

    def _start(self, name: str, factory: Callable[..., Any], *args: Any) -> Any:
        sink = self._guarded(name, factory, *args)
        if sink is not None:
            self._sinks.append(sink)
        return sink

    def _guarded(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Calls `fn`; on failure reports it, switches back-end `name` off and returns None."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - a logging back-end must never stop training
            self._sinks = [sink for sink in self._sinks if sink.name != name]
            error = f"{type(exc).__name__}: {exc}"
            self.message(f"{name} logging failed ({error}); continuing without it")
            return None
