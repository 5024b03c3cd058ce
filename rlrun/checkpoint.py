"""Checkpoint files: atomic writes, retention, and safe loading (tensors and plain data only)."""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from rlrun.config import ConfigError

FORMAT = "rlrun-checkpoint-1"
LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable, unsafe or not rlrun's."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run dir (its checkpoints/last.pt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / LAST
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass a checkpoint file or a run dir that holds checkpoints/{LAST}")
    return path


def run_dir_of(checkpoint: Path) -> Path:
    """The run dir a checkpoint file belongs to."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file in the same dir, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an rlrun checkpoint with `weights_only=True`: pickled code is refused, never run."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain data ({first}); "
            "only rlrun checkpoints can be loaded"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or corrupt ({type(error).__name__}); "
            f"use another checkpoint, e.g. a numbered one beside it"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rlrun checkpoint; pass a file written by rlrun")
    return state


class Checkpointer:
    """Writes last.pt, best.pt and the newest `keep` numbered checkpoints of one run."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep

    def save(self, state: dict[str, Any], step: int, best: bool = False) -> Path:
        last = self.directory / LAST
        save_atomic(state, last)
        if self.keep > 0:
            self._link(last, self.directory / f"step_{step:012d}.pt")
            for old in sorted(self.directory.glob("step_*.pt"))[: -self.keep]:
                old.unlink()
        if best:
            self._link(last, self.directory / BEST)
        return last

    @staticmethod
    def _link(source: Path, target: Path) -> None:
        """Atomically point `target` at `source`'s content (hard link, or a copy)."""
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
