"""One process per run dir: the lock names its holder; dead holders' locks are taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rlrun.run import lock as lock_module
from rlrun.run.lock import RunLock, RunLocked


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    first = RunLock(tmp_path).acquire()
    holder = json.loads((tmp_path / ".lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] and holder["started"] > 0
    other = RunLock(tmp_path)
    other.holder = {**other.holder, "pid": os.getppid()}  # another live process of this host
    with pytest.raises(
        RunLocked, match=rf"in use by another rlrun process \(pid {os.getpid()} on "
    ):
        other.acquire()
    first.release()
    assert not (tmp_path / ".lock").exists()


def test_the_lock_of_a_dead_process_is_taken_over_with_a_notice(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = {"pid": int(dead.stdout), "host": RunLock(tmp_path).holder["host"], "started": 1.0}
    (tmp_path / ".lock").write_text(json.dumps(stale))
    notices = []
    taken = RunLock(tmp_path).acquire(notify=notices.append)
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert len(notices) == 1 and f"pid {stale['pid']}" in notices[0] and "gone" in notices[0]
    taken.release()


def test_another_hosts_lock_counts_while_its_heartbeat_is_fresh(tmp_path, monkeypatch):
    (tmp_path / ".lock").write_text(
        json.dumps({"pid": 1, "host": "node-17", "started": time.time()})
    )
    with pytest.raises(RunLocked, match="node-17"):
        RunLock(tmp_path).acquire()
    old = time.time() - lock_module.STALE_AFTER_S - 1
    os.utime(tmp_path / ".lock", (old, old))
    taken = RunLock(tmp_path).acquire(notify=lambda text: None)
    taken.release()


def test_the_heartbeat_touches_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    held = RunLock(tmp_path).acquire()
    old = time.time() - 100
    os.utime(tmp_path / ".lock", (old, old))
    time.sleep(0.3)
    assert time.time() - (tmp_path / ".lock").stat().st_mtime < 5
    held.release()
