"""A run's checkpoints: the objects it tracks, when a checkpoint is due, writing one (non-finite
scan, assembly, retention) and restoring the tracked objects from the one a run resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from rlrun.run.checkpoint_files import (
    FORMAT,
    Checkpointer,
    SideFile,
    Stateful,
    load_tracked,
    non_finite_tensor,
    tracked_states,
)
from rlrun.run.resume import Resumed
from rlrun.run.seeding import rng_state, set_rng_state
from rlrun.training.optim import FlatOptimizer, NonFiniteError


class Every:
    """A schedule in env steps: due at each multiple of `every` (never when `every` is 0)."""

    def __init__(self, every: int, step: int) -> None:
        self.every = every
        self.next: int | None = None
        """The next step it is due at; None: never."""
        self.passed(step)

    def due(self, step: int) -> bool:
        return self.next is not None and step >= self.next

    def passed(self, step: int) -> None:
        """It happened at `step`: due next at the first multiple after it."""
        self.next = (step // self.every + 1) * self.every if self.every > 0 else None


class RunCheckpoints:
    """The checkpoints of one run in `directory`: `keep` numbered ones besides last.pt and best.pt,
    one every `every_steps` env steps.

    `notice` shows a line on the console and in train.log, `record_line` writes one to train.log
    only. `written` is the step of the checkpoint a resumed run starts from (None: fresh).
    """

    def __init__(
        self, directory: Path, keep: int, every_steps: int, notice: Callable[[str], None],
        record_line: Callable[[str], None], written: int | None = None,
        skip_nonfinite: bool = False,
    ) -> None:
        self.checkpointer = Checkpointer(directory, keep)
        self.tracked: dict[str, Stateful | SideFile] = {}
        """What goes into every checkpoint, by name (`track`)."""
        self.written = written
        """Step of the newest checkpoint (written, or resumed from); None before the first."""
        self.schedule = Every(every_steps, written or 0)
        self.skip_nonfinite = skip_nonfinite
        """Tracked FlatOptimizers skip a non-finite update instead of raising
        (`divergence.on_nan`)."""
        self._notice = notice
        self._record_line = record_line
        self._side_files_shown: set[str] = set()

    @property
    def directory(self) -> Path:
        return self.checkpointer.directory

    def track(self, **objects: Stateful | SideFile) -> None:
        """Register objects whose state_dict goes into every checkpoint under these names (a
        `SideFile` into `<name>.pt` beside it); a FlatOptimizer learns its name and what to do
        with a non-finite update."""
        self.tracked.update(objects)
        for name, obj in objects.items():
            if isinstance(obj, FlatOptimizer):
                obj.name = name
                obj.skip_nonfinite = self.skip_nonfinite

    def skipped_updates(self) -> int:
        """Updates the tracked optimizers skipped for a non-finite value (count)."""
        return sum(obj.skipped_steps for obj in self.tracked.values()
                   if isinstance(obj, FlatOptimizer))

    def due(self, step: int) -> bool:
        """Whether `checkpoint.every_steps` is reached at `step`."""
        return self.schedule.due(step)

    def save(self, step: int, about: dict[str, Any], best: bool = False) -> Path:
        """Write last.pt (and a numbered copy, and best.pt if `best`): the format marker, `about`
        (the run's plain data, in order), the tracked objects' states and the RNG states.

        Raises NonFiniteError, writing nothing, when a tracked network holds a NaN or infinity.
        """
        for name, obj in self.tracked.items():
            if isinstance(obj, nn.Module) and (tensor := non_finite_tensor(obj.state_dict())):
                raise NonFiniteError(f"non-finite parameter {name}.{tensor}")
        state = {
            "format": FORMAT,
            **about,
            "modules": tracked_states(self.tracked, self.directory, step, self._side_file_notice),
            "rng": rng_state(),
        }
        path = self.checkpointer.save(state, step, best=best)
        self.written = step
        self.schedule.passed(step)
        return path

    def restore(self, resumed: Resumed) -> None:
        """Load the resumed checkpoint into the tracked objects, then the RNG states."""
        load_tracked(self.tracked, resumed.state, resumed.path, self._notice)
        set_rng_state(resumed.state["rng"])

    def kept(self) -> str:
        """What the run keeps if it stops now: `the checkpoint of step N is kept`, or that none
        is."""
        if self.written is None:
            return "no checkpoint had been written"
        return f"the checkpoint of step {self.written} is kept"

    def _side_file_notice(self, text: str) -> None:
        """`Wrote <name> state to ...`: on the console the first time, in train.log every time."""
        name = text.split(" state ")[0]
        if name in self._side_files_shown:
            self._record_line(text)
        else:
            self._side_files_shown.add(name)
            self._notice(text)
