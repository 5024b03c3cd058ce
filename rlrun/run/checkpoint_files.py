"""Checkpoint files: atomic writes, retention, and safe loading (tensors and plain data only)."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rlrun.config import ConfigError

if TYPE_CHECKING:
    import torch

FORMAT = "rlrun-checkpoint-1"
LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable, unsafe or not rlrun's."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, a run dir (its checkpoints/last.pt), or a run's checkpoints dir (its
    last.pt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        inside = path / LAST if path.name == "checkpoints" else path / "checkpoints" / LAST
        path = path / LAST if (path / LAST).is_file() else inside
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass a checkpoint file or a run dir that holds checkpoints/{LAST}")
    return path


def run_dir_of(checkpoint: Path) -> Path:
    """The run dir a checkpoint file belongs to."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, unwritable dir); the previous one is intact."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file in the same dir, fsync, then rename over `path`.

    Raises CheckpointWriteError when writing fails; `path` then still holds the previous file.
    """
    import torch  # here: the command line's paths that read no checkpoint load no torch

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # torch.save reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        kept = "the previous checkpoint is intact" if path.is_file() else "no checkpoint was written"
        raise CheckpointWriteError(f"cannot write {path} ({reason}); {kept}. {_remedy(error, path)}") from None
    except BaseException:  # a second Ctrl-C mid-write: no temp file left behind
        tmp.unlink(missing_ok=True)
        raise


def _remedy(error: BaseException, path: Path) -> str:
    """What to do about a failed write, by its cause."""
    code = error.errno if isinstance(error, OSError) else None
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "Make the dir writable, then re-run the same command to resume"
    if code == errno.ENOENT or not path.parent.is_dir():
        return (f"{path.parent} was removed or moved while the run was writing to it (by another "
                "process or a clean-up job?); re-run the command to start again")
    if code in (errno.ENOSPC, errno.EDQUOT) or "space" in str(error).lower():
        return "Free disk space, then re-run the same command to resume"
    return "Free disk space or make the dir writable, then re-run the same command to resume"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an rlrun checkpoint with `weights_only=True`: pickled code is refused, never run."""
    import torch

    path = resolve_checkpoint(path)
    if not _is_torch_file(path):
        raise CheckpointError(
            f"{path} is not a torch checkpoint file (torch.save writes a zip archive); pass a "
            f"checkpoint written by rlrun (checkpoints/{LAST} of a run dir, or the run dir)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on the pickle protocol of a foreign file
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain data (code is "
            "never run from a checkpoint); only rlrun checkpoints can be loaded"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or corrupt ({type(error).__name__}); "
            f"use another checkpoint, e.g. a numbered one beside it"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rlrun checkpoint; pass a file written by rlrun")
    return state


TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
"""The first bytes of a torch.save file: a zip archive, or a pickle (torch's legacy format)."""


def _is_torch_file(path: Path) -> bool:
    """Whether `path` begins like a file torch.save writes (an empty file does not)."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError:
        return True  # torch.load reports why it cannot be read
    return head.startswith(TORCH_MAGIC)


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
        try:
            tmp.unlink(missing_ok=True)
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise CheckpointWriteError(
                f"cannot write {target} ({error.strerror}); {source.name} beside it is complete. "
                "Free disk space or make the dir writable, then re-run the same command to resume"
            ) from None


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class SideFile:
    """Marks a tracked object whose state is too large for the checkpoint file (a replay buffer).

    `run.track(replay=SideFile(buffer))` writes the state to `checkpoints/<name>.pt` beside
    each checkpoint (atomically, before `last.pt`), with the same format marker and
    `weights_only` loading; the checkpoint itself holds only the file name and step. Numbered
    checkpoints and `best.pt` share the one side file, so resuming from them continues with
    the newest side-file state.
    """

    def __init__(self, obj: Stateful) -> None:
        self.obj = obj


def non_finite_tensor(state: dict[str, Any]) -> str | None:
    """Name of the first floating-point tensor in `state` holding a NaN or infinity."""
    import torch

    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


def tracked_states(
    tracked: dict[str, Stateful | SideFile], directory: Path, step: int, notice: Callable[[str], None]
) -> dict[str, Any]:
    """The checkpoint's `modules` entry: each object's state, side files written to `directory`."""
    return {
        name: save_side_file(name, obj.obj, directory, step, notice) if isinstance(obj, SideFile)
        else obj.state_dict()
        for name, obj in tracked.items()
    }


def save_side_file(
    name: str, obj: Stateful, directory: Path, step: int, notice: Callable[[str], None]
) -> dict[str, Any]:
    path = directory / f"{name}.pt"
    save_atomic({"format": FORMAT, "global_step": int(step), "state": obj.state_dict()}, path)
    notice(f"Wrote {name} state to {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return {"side_file": path.name, "global_step": int(step)}


def load_tracked(
    tracked: dict[str, Stateful | SideFile], state: dict[str, Any], path: Path,
    notice: Callable[[str], None],
) -> None:
    """Load the checkpoint `state` (read from `path`) into the tracked objects.

    Raises:
        CheckpointError: the checkpoint lacks an object, one does not fit, or a side file is missing.
    """
    missing = set(tracked) - set(state["modules"])
    if missing:
        raise CheckpointError(
            f"{path} lacks {sorted(missing)}, which this config needs: resume with "
            "the checkpoint's config, or train in a new run dir"
        )
    for name, obj in tracked.items():
        try:
            if isinstance(obj, SideFile):
                obj.obj.load_state_dict(_load_side_file(state["modules"][name], path, int(state["global_step"]), notice))
            else:
                obj.load_state_dict(state["modules"][name])
        except (RuntimeError, KeyError, ValueError, IndexError) as error:
            raise CheckpointError(
                f"{path}: its {name} does not fit this config "
                f"({str(error).strip().splitlines()[0][:160]}); resume with the checkpoint's "
                "network and algo settings, or train in a new run dir"
            ) from None


def _load_side_file(entry: dict[str, Any], checkpoint: Path, step: int, notice: Callable[[str], None]) -> dict[str, Any]:
    path = checkpoint.parent / entry["side_file"]
    if not path.is_file():
        raise CheckpointError(
            f"{checkpoint} needs {path.name} beside it, which is missing; resume from "
            "the checkpoints dir that holds both"
        )
    side = load_checkpoint(path, map_location="cpu")
    if side["global_step"] != step:
        notice(
            f"{path.name} is from step {side['global_step']}, the checkpoint from step {step}: "
            f"continuing with the state of step {side['global_step']}"
        )
    return side["state"]
