"""One process per run dir: a lock file naming its holder, kept fresh by a heartbeat.

`<run dir>/.lock` holds the holder's pid, host and start time as JSON; the holder touches it
every `HEARTBEAT_S` seconds. A second process refuses to start while the holder is alive:
on the same host, while its pid runs; on another host (a requeued Slurm job on a new node),
while the lock was touched within `STALE_AFTER_S` seconds. A lock left by a dead process is
taken over with a notice.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rlrun.config import ConfigError

LOCK_NAME = ".lock"
"""Lock file name inside the run dir."""
HEARTBEAT_S = 30.0
"""Seconds between the holder's touches of the lock file."""
STALE_AFTER_S = 300.0
"""A lock of another host untouched this long (seconds) belongs to a dead process."""


class RunLocked(ConfigError):
    """Another live process holds the run dir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _describe(holder: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {started}"


class RunLock:
    """The lock of one run dir, held from `acquire` to `release`."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, notify: Callable[[str], None] = print) -> RunLock:
        """Take the lock, or raise RunLocked naming the live holder; take over a dead holder's."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            previous = self._read()
            if previous is not None and self._alive(previous):
                raise RunLocked(
                    f"{self.path.parent} is in use by another rlrun process "
                    f"({_describe(previous)}); "
                    "wait for it to end or stop it, or train in another run dir (hydra.run.dir=...)"
                ) from None
            self._write_replacing()
            if previous is not None:
                notify(
                    f"Took over the lock of {self.path.parent} from a process that is gone "
                    f"({_describe(previous)})"
                )
        else:
            with os.fdopen(fd, "w") as file:
                json.dump(self.holder, file)
        self._heartbeat = threading.Thread(target=self._beat, name="rlrun-lock", daemon=True)
        self._heartbeat.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still this process's."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=1.0)
            self._heartbeat = None
        if self._read() == self.holder:
            self.path.unlink(missing_ok=True)

    def _alive(self, holder: dict) -> bool:
        if holder.get("host") == self.holder["host"]:
            return holder.get("pid") != self.holder["pid"] and _pid_alive(
                int(holder.get("pid", -1))
            )
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        return age < STALE_AFTER_S

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _write_replacing(self) -> None:
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.holder['pid']}.tmp")
        tmp.write_text(json.dumps(self.holder))
        os.replace(tmp, self.path)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return  # the run dir is gone; the run itself will report it
