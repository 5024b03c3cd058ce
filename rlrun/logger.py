"""Metric logging: metrics.jsonl, TensorBoard, Weights & Biases, MLflow and a rich console.

Every back-end receives every event. A back-end that fails (at start or while logging) is
reported once, as a warning, and switched off; training goes on with the others.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from rlrun.config import LoggerConfig

_log = logging.getLogger("rlrun")

_BAR_KEYS = {"rollout/ep_return_mean": "return", "eval/return_mean": "eval"}
"""Metrics shown on the progress bar, with their short labels."""


class _JsonlSink:
    """Appends one JSON object per event to metrics.jsonl, flushed at most once a second; rows
    after `start_step` (of an attempt that left no checkpoint of them) are dropped first."""

    name = "metrics.jsonl"

    def __init__(self, path: Path, start_step: int) -> None:
        self.previous_time = _truncate(path, start_step) if path.exists() else 0.0
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


_CONFIG_TEXT_TAG = "config/text_summary"
"""Tag of the resolved config's text event (`add_text("config", ...)`)."""
_HPARAMS_TAG = "_hparams_/session_start_info"
"""Tag of the HParams plugin's session event (the run's flattened config)."""


class _TensorBoardSink:
    """Scalars under run_dir/tb, the resolved config as text and as an HParams session.

    The HParams tab compares the runs under one log dir (a sweep's jobs) by their config values;
    its metrics are the runs' scalars, `eval/return_mean` (the last value: the final evaluation's
    return) among them. On resume, events after `start_step` (written after the last checkpoint
    by the interrupted attempt) and the old config events are dropped from the event files
    first, so the resumed run continues one clean step axis under its current config."""

    name = "tensorboard"

    def __init__(self, log_dir: Path, start_step: int, config: dict) -> None:
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb
        from torch.utils.tensorboard import SummaryWriter

        if log_dir.is_dir():
            _truncate_events(log_dir, start_step)
        self._writer = SummaryWriter(str(log_dir))
        text = OmegaConf.to_yaml(OmegaConf.create(config))
        self._writer.add_text("config", "".join(f"    {line}\n" for line in text.splitlines()),
                              start_step)
        self._writer.file_writer.add_summary(hparams_pb(hparam_values(config)), start_step)

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._writer.close()


def hparam_values(config: dict) -> dict[str, float | int | str | bool]:
    """The config's leaves by dotted key, as HParams values (null and lists as their JSON text)."""
    from rlrun.flat import flatten

    return {key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
            for key, value in flatten(config).items()}


def _truncate_events(log_dir: Path, start_step: int) -> None:
    """Rewrite the event files of `log_dir` into one that keeps only events up to `start_step`,
    less the config events (the resumed run writes its own), under the oldest file's name (so
    that it sorts before the resumed run's new file)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    old = sorted(log_dir.glob("events.out.tfevents.*"))
    if not old:
        return
    staging = log_dir / ".resume"
    shutil.rmtree(staging, ignore_errors=True)
    writer = EventFileWriter(str(staging))
    for path in old:
        for event in LegacyEventFileLoader(str(path)).Load():
            if event.step <= start_step and not event.HasField("file_version") and not any(
                value.tag in (_CONFIG_TEXT_TAG, _HPARAMS_TAG) for value in event.summary.value
            ):
                writer.add_event(event)
    writer.close()
    (written,) = staging.iterdir()
    os.replace(written, old[0])
    staging.rmdir()
    for path in old[1:]:
        path.unlink()


class _WandbSink:
    """A Weights & Biases run under run_dir/wandb, resumed when its id is given."""

    name = "wandb"

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, config: dict, run_id: str | None, run_name: str,
        group: str | None,
    ) -> None:
        import wandb

        self._run = wandb.init(
            project=cfg.wandb_project,
            entity=cfg.wandb_entity,
            dir=str(run_dir),
            config=config,
            id=run_id,  # None: wandb generates one (wandb.util.generate_id is gone in 0.31)
            resume="allow",
            name=cfg.wandb_name or run_name or None,
            group=cfg.wandb_group or group,
            tags=list(cfg.wandb_tags),
            notes=cfg.wandb_notes,
        )
        self.id: str = self._run.id

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        self._run.log(metrics, step=step)

    def close(self) -> None:
        self._run.finish()


class _TextLog:
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


class _Console:
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
        self._console = _Console(self.status, label) if cfg.console else None
        self._sinks: list[Any] = []
        self._text: _TextLog | None = None
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
        self._text = self._guarded("train.log", _TextLog, self.run_dir / "train.log")
        for line in self._early_lines:
            self._write_text(line)
        self._early_lines.clear()
        jsonl = (self._start("metrics.jsonl", _JsonlSink, self.run_dir / "metrics.jsonl", self._start_step)
                 if self.cfg.jsonl else None)
        self._time_offset = jsonl.previous_time if jsonl else 0.0
        if self.cfg.tensorboard:
            self._start("tensorboard", _TensorBoardSink, self.run_dir / "tb", self._start_step,
                        self._config)
        skipped = self._unreachable()
        if self.cfg.wandb and "wandb" not in skipped:
            wandb = self._start("wandb", _WandbSink, self.cfg, self.run_dir, self._config, self.wandb_id,
                                self._run_name, self._group)
            self.wandb_id = wandb.id if wandb else self.wandb_id
        if self.cfg.mlflow and "mlflow" not in skipped:
            from rlrun.mlflow_log import MlflowSink

            mlflow = self._start("mlflow", MlflowSink, self.cfg, self.run_dir, self._config,
                                 self.mlflow_id, self._run_name, self._group)
            self.mlflow_id = mlflow.id if mlflow else self.mlflow_id

    def _unreachable(self) -> set[str]:
        """Under `on_failure=continue`, the remote loggers that cannot be reached now (said once
        each; their clients would retry for minutes). Under `fail` the start refused them."""
        if self.cfg.on_failure != "continue":
            return set()
        from rlrun.logger_check import unreachable

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
