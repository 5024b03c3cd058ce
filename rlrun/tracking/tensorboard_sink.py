"""The TensorBoard back-end of `rlrun.tracking.logger`: scalars under run_dir/tb, the resolved config as
text and as an HParams session; on resume, the events after the checkpoint's step are dropped.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

_CONFIG_TEXT_TAG = "config/text_summary"
"""Tag of the resolved config's text event (`add_text("config", ...)`)."""
_HPARAMS_TAG = "_hparams_/session_start_info"
"""Tag of the HParams plugin's session event (the run's flattened config)."""


class TensorBoardSink:
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
    from rlrun.config.flat import flatten

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
