"""Metric logging: metrics.jsonl, TensorBoard, Weights & Biases, MLflow and a rich console.

Every back-end receives every event. A back-end that fails (at start or while logging) is
reported once, as a warning, and switched off; training goes on with the others. `Logger` is
the facade; each back-end is its own module (`rlrun.tracking.jsonl_sink`, `rlrun.tracking.tensorboard_sink`,
`rlrun.tracking.wandb_sink`, `rlrun.tracking.mlflow_sink`), the console, the status line and train.log are in
`rlrun.tracking.console`, and `rlrun.tracking.check` tries the remote ones before a run starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from rlrun.config import LoggerConfig
from rlrun.tracking.console import ETA_AFTER_S, LogConsole, Status, TextLog, spread_text
from rlrun.tracking.jsonl_sink import JsonlSink
from rlrun.tracking.tensorboard_sink import TensorBoardSink
from rlrun.tracking.wandb_sink import WandbSink

__all__ = ["ETA_AFTER_S", "Logger", "Status", "spread_text"]

_log = logging.getLogger("rlrun")


class Logger:
    """Sends metric events to every enabled back-end and shows progress on the console.

    Nothing is written until `open` (called by the first `log`): messages before it are shown
    on the console and written to train.log when it opens, so a run refused during set-up
    leaves its run dir untouched.

    Args:
        cfg: Which back-ends are on and the status-line interval.
        run_dir: Run directory; metrics.jsonl, train.log, tb/ and wandb/ go there.
        total_steps: Training budget (env steps), for the progress bar.
        config: Resolved run config, stored with the wandb and MLflow runs and in tb/.
        start_step: Env step a resumed run starts from (0 for a fresh run).
        wandb_id: Id of the wandb run to resume; a new one is generated when None.
        mlflow_id: Id of the MLflow run to continue; a new run is created when None.
        run_name: Display name of the wandb and MLflow runs.
        group: The sweep this run is a job of (the wandb group unless `wandb_group` is set).
        label: Prefix of each console line (a job of a sweep: `[job 3 algo=a2c,seed=1]`); not
            written to train.log, which is the job's own.
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
        mlflow_id: str | None = None,
        run_name: str = "",
        group: str | None = None,
        label: str = "",
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self._config, self._start_step, self._run_name = config, start_step, run_name
        self._group = group
        self.wandb_id: str | None = wandb_id
        self.mlflow_id: str | None = mlflow_id
        self.status = Status(total_steps, start_step, tuple(cfg.info_keys))
        self._next_interval = (start_step // cfg.every_steps + 1) * cfg.every_steps
        self._status_line = ""
        self._opened = self._closed = False
        self._t0 = time.monotonic()
        self._time_offset = 0.0
        self._console = LogConsole(self.status, label) if cfg.console else None
        self._sinks: list[Any] = []
        self._text: TextLog | None = None
        self._early_lines: list[str] = []
        self._failed: set[str] = set()

    @property
    def opened(self) -> bool:
        """Whether any file has been written (the first `log` or `open`)."""
        return self._opened

    def open(self) -> None:
        """Create the run dir's log files (metrics.jsonl truncated to `start_step` on resume,
        train.log, tb/, the wandb and MLflow runs); safe to call again."""
        if self._opened:
            return
        self._opened = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._text = self._guarded("train.log", TextLog, self.run_dir / "train.log")
        for line in self._early_lines:
            self._write_text(line)
        self._early_lines.clear()
        jsonl = (self._start("metrics.jsonl", JsonlSink, self.run_dir / "metrics.jsonl", self._start_step)
                 if self.cfg.jsonl else None)
        self._time_offset = jsonl.previous_time if jsonl else 0.0
        if self.cfg.tensorboard:
            self._start("tensorboard", TensorBoardSink, self.run_dir / "tb", self._start_step,
                        self._config)
        skipped = self._unreachable()
        if self.cfg.wandb and "wandb" not in skipped:
            wandb = self._start("wandb", WandbSink, self.cfg, self.run_dir, self._config, self.wandb_id,
                                self._run_name, self._group)
            self.wandb_id = wandb.id if wandb else self.wandb_id
        if self.cfg.mlflow and "mlflow" not in skipped:
            from rlrun.tracking.mlflow_sink import MlflowSink

            mlflow = self._start("mlflow", MlflowSink, self.cfg, self.run_dir, self._config,
                                 self.mlflow_id, self._run_name, self._group)
            self.mlflow_id = mlflow.id if mlflow else self.mlflow_id

    def _unreachable(self) -> set[str]:
        """Under `on_failure=continue`, the remote loggers that cannot be reached now (said once
        each; their clients would retry for minutes). Under `fail` the start refused them."""
        if self.cfg.on_failure != "continue":
            return set()
        from rlrun.tracking.check import unreachable

        problems = unreachable(self.cfg)
        for problem in problems.values():
            self.message(f"{problem}; continuing without it (logger.on_failure=continue)",
                         logging.WARNING)
        return set(problems)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Records one event at global env step `step` (tensors and numpy scalars accepted)."""
        self.open()
        values = {key: float(value) for key, value in metrics.items()}
        elapsed = self._time_offset + time.monotonic() - self._t0
        for sink in list(self._sinks):
            self._guarded(sink.name, sink.log, values, int(step), elapsed)
        self.status.record(values, step)
        if self._console is not None:
            self._console.record(values)

    def finish(self, summary: dict[str, Any], checkpoint: Path) -> None:
        """The run ended with its final evaluation: hand `summary` (plain data) and the final
        `checkpoint` file to the back-ends that keep artifacts (MLflow)."""
        for sink in list(self._sinks):
            if hasattr(sink, "finish"):
                self._guarded(sink.name, sink.finish, summary, checkpoint)

    def progress(self, step: int) -> None:
        """Updates the progress bar (throttled) and writes a status line every `every_steps` steps."""
        self.status.step = max(self.status.step, step)
        if self._next_interval <= step < self.status.total:  # the last line: report_status, once
            self._next_interval = (step // self.cfg.every_steps + 1) * self.cfg.every_steps
            self._interval()
        if self._console is not None:
            self._console.refresh()

    def _interval(self) -> None:
        self._status_line = self.status.line()
        self._write_text(self._status_line)
        if self._console is not None:
            self._console.interval()

    def report_status(self) -> None:
        """Write the status line now, unless the last one said the same."""
        if self._opened and self.status.line() != self._status_line:
            self._interval()

    def message(self, text: str, level: int = logging.INFO) -> None:
        """Shows one human-readable line on the console and writes it to train.log (and to the
        `rlrun` Python logger at `level`)."""
        if self._console is not None:
            self._console.print(text)
        self._write_text(text, level)

    def panel(self, title: str, rows: list[tuple[str, str]]) -> None:
        """A titled block of `name  value` rows: a rich panel on a terminal, plain lines otherwise."""
        from rich.panel import Panel

        width = max(len(name) for name, _ in rows)
        plain = "\n".join([title, *(f"  {name.ljust(width)}  {value}" for name, value in rows)])
        if self._console is not None:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="cyan")
            grid.add_column()
            for name, value in rows:
                grid.add_row(name, value)
            panel = Panel(grid, title=escape(self._console.labelled(title)), title_align="left",
                          expand=False)
            self._console.print_renderable(panel, plain)
        for line in plain.splitlines():
            self._write_text(line)

    def close(self) -> None:
        """Writes the last status line, stops the progress bar, flushes and closes every back-end;
        safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.report_status()
        if self._console is not None:
            self._console.close()
        for sink in list(self._sinks):
            self._guarded(sink.name, sink.close)
        self._sinks.clear()
        if self._text is not None:
            self._text.close()

    def record_line(self, text: str) -> None:
        """Writes one line to train.log only."""
        self._write_text(text)

    def _write_text(self, line: str, level: int = logging.INFO) -> None:
        _log.log(level, line)
        if not self._opened:
            self._early_lines.append(line)
        elif self._text is not None:
            self._text.write(line)

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
            line = f"{name} logging failed ({error}); continuing without it"
            if name in self._failed:  # shown once; a later failure of it goes to train.log only
                self._write_text(line, logging.WARNING)
            else:
                self._failed.add(name)
                self.message(line, logging.WARNING)
            return None
