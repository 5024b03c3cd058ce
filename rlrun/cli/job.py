"""One training job, as the `rlrun` command and `rlrun.train` run it: the run under its lock
(`train_outcome`, and how it ended: `Outcome`) and Hydra's job runner around it
(`run_single_job`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

from rlrun.registry import algorithms

if TYPE_CHECKING:
    from collections.abc import Callable

    from hydra.core.utils import JobReturn

    from rlrun.config import TrainConfig
    from rlrun.run.facade import Launch, RunInterrupted, TrainResult


BUDGET, STOPPED, INTERRUPTED, DIVERGED, CALLBACK_FAILED = (
    "budget", "stopped", "interrupted", "diverged", "callback failed")
"""Why a run stopped (`Outcome.stopped_because`)."""


@dataclass
class Outcome:
    """How one run ended (`train_outcome`): the command line prints it, the Python API returns it."""

    stopped_because: str
    """budget (trained to total_timesteps, now or by an earlier command), stopped (a stopping
    rule `stop.*` ended it; the reason is the result's `stop_reason`), interrupted (a stop signal;
    checkpoint written), diverged (a non-finite value; the last good checkpoint kept) or
    callback failed (a callback's hook raised; checkpoint written)."""
    message: str
    """The line the command line prints about it; empty when training has just used its budget
    (the run's own last line says so)."""
    step: int
    """Env steps trained when it stopped."""
    result: TrainResult | None = None
    """The final evaluation; None when the run stopped before it."""
    interrupted: RunInterrupted | None = None
    """The stop signal's exception, to pass on to the handler installed before the run's."""


def train_outcome(cfg: TrainConfig, run_dir: Path, launch: Launch) -> Outcome:
    """Train one run in `run_dir` under its lock (a finished run is not trained again). A refused
    run leaves the dir as it found it (and removes it if it made it).

    Raises:
        ConfigError: the run dir is locked by another process, or the run is refused (e.g.
            CheckpointError: its checkpoint does not fit the config).
        RunPruned: the search pruned the run (its checkpoint written).
    """
    from rlrun.callbacks import CallbackError
    from rlrun.run.facade import Run, RunInterrupted, RunPruned, finished_result
    from rlrun.run.lock import RunLock
    from rlrun.training.optim import NonFiniteError

    lock = RunLock(run_dir).acquire()
    try:
        done = finished_result(cfg, run_dir)
        if done is not None:
            how = (f" ({done.stop_reason}; change a stop.* key or total_timesteps to continue it)"
                   if done.stop_reason else "")
            return Outcome(STOPPED if done.stop_reason else BUDGET,
                           f"{run_dir} already finished at step {done.global_step}{how}; its recorded "
                           f"final eval return is {done.final_eval_return:.2f} (not retrained)",
                           done.global_step, done)
        spec = algorithms()[cfg.algo.name]
        run = Run(cfg, run_dir, replace(launch, check_spaces=spec.check_spaces))
        try:
            result = spec.train(cfg, run)
        except RunPruned as pruned:
            run.record_line(str(pruned))
            raise
        except RunInterrupted as interrupted:
            run.record_line(str(interrupted))
            return Outcome(INTERRUPTED, str(interrupted), run.step, interrupted=interrupted)
        except CallbackError as error:
            run.record_line(str(error))
            return Outcome(CALLBACK_FAILED, str(error), run.step)
        except NonFiniteError as error:
            message = run.divergence_message(error)
            run.record_line(message)
            return Outcome(DIVERGED, message, run.step)
        finally:
            run.close()
        return Outcome(STOPPED if result.stop_reason else BUDGET, "", result.global_step, result)
    finally:
        lock.release()
        _remove_if_empty([run_dir])


def _remove_if_empty(dirs: list[Path]) -> None:
    """Remove each dir of `dirs` (deepest first) that exists and is empty."""
    for directory in dirs:
        try:
            directory.rmdir()
        except OSError:
            pass  # not empty, or gone


def run_single_job(
    cfg: DictConfig, task: Callable[[DictConfig], Any], configure_logging: bool = True
) -> JobReturn:
    """Run `task` as the one job of the composed config `cfg` (with its `hydra` node) through
    Hydra's job runner: run dir, Hydra's config for the job, callbacks, and Python's logging
    configured from `hydra.job_logging` when `configure_logging`. Dirs it creates for a run that
    is then refused are removed again."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import JobRuntime, configure_log, run_job
    from hydra.types import HydraContext

    if cfg.hydra.mode is None:  # as Hydra's entry point does for a run
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.mode = RunMode.RUN
            cfg.hydra.overrides.hydra.append("hydra.mode=RUN")
    run_dir = Path(str(cfg.hydra.run.dir)).absolute()
    created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
    JobRuntime.instance().set("name", cfg.hydra.job.name)
    if configure_logging:
        configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name="train")
    try:
        result = run_job(
            task_function=task, config=cfg, job_dir_key="hydra.run.dir", job_subdir_key=None,
            hydra_context=HydraContext(config_loader=None, callbacks=callbacks),
            configure_logging=configure_logging,
        )
    finally:
        _remove_if_empty(created)
    callbacks.on_run_end(config=cfg, config_name="train", job_return=result)
    return result
