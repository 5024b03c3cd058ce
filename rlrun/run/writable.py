"""Run dirs that cannot be written (read-only copies, another user's runs, a read-only mount):
one test of a dir and one wording of the fix, shared by training, resume and evaluation."""

from __future__ import annotations

import os
from pathlib import Path


def writable(directory: Path) -> bool:
    """Whether files can be created in the existing dir `directory`."""
    return os.access(directory, os.W_OK | os.X_OK)


def creatable(path: Path) -> bool:
    """Whether the dir `path` exists and is writable, or its nearest existing parent is."""
    return writable(next(p for p in (path, *path.parents) if p.exists()))


def write_fix(run_dir: Path, use: str) -> str:
    """The two ways to get a writable run dir from the read-only `run_dir`; `use` is the command
    that then takes the copy, with `<new dir>` in it."""
    return (f"copy it (cp -r {run_dir} <new dir>) and run {use}, or make it writable "
            f"(chmod -R u+w {run_dir})")
