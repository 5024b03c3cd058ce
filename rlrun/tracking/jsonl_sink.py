"""The metrics.jsonl back-end of `rlrun.tracking.logger`: one JSON line per event, keyed by global env step;
on resume, the lines after the checkpoint's step are dropped first.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class JsonlSink:
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
