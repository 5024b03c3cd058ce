"""The Python API: `rlrun.train(...)` runs one experiment in this process as the `rlrun` command
does; `rlrun.load(path)` gives the policy of a run dir or checkpoint.

`train` takes the command line's overrides, as `key=value` strings (a list, or one string split
as a shell splits it) and as keyword arguments: a dict is a section (`eval={"episodes": 2}` is
`eval.episodes=2`), a dotted key goes through `**{"eval.episodes": 2}`. They are rewritten,
composed and validated by the command line's own code (`rlrun.cli.arguments.rewrite`,
`rlrun.cli.compose.compose_config`) and trained through the same job runner, so the run dir holds
the same files (`.hydra/`, `metrics.jsonl`, `train.log`, checkpoints). A mistake raises
ConfigError (CheckpointError for checkpoints) carrying the one line the command line prints;
nothing exits the process.

`env=` also takes a callable that makes a new env (a `gymnasium.Env` subclass, or a function
returning one; `rlrun.envs.python_env`). A checkpoint cannot rebuild such an env: its run
continues with `train(resume=<run>, env=<callable>)` and loads with `load(<run>, env=<callable>)`,
while `rlrun resume=` and `rlrun-eval` refuse it in one line.

One run at a time per process (a second call while one runs, from another thread, raises
RunInProgressError); a call works from any thread and in a notebook. A run installs its signal
handlers (Ctrl-C, SIGTERM: stop with a checkpoint) only in the main thread, as Python allows, and
what it changes in the process is restored when it returns: torch's thread count and
deterministic-algorithms switch, the generator states of `random`, numpy and torch, and Hydra's
global state (a user's own `hydra.initialize` included); Python's logging is left as it was.
"""

from __future__ import annotations

import numbers
import shlex
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlrun.api_policy import Policy, load, python_env_id

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from rlrun.cli.job import Outcome
    from rlrun.config import TrainConfig

__all__ = ["Policy", "RunInProgressError", "RunResult", "load", "train"]

_ONE_RUN = threading.Lock()
"""Held while `train` runs: Hydra's state, the signal handlers and the RNGs are per process."""


class RunInProgressError(RuntimeError):
    """`rlrun.train` was called while another call was running in this process."""


@dataclass(frozen=True)
class RunResult:
    """What `rlrun.train` returns: where the run is, how it ended and what it reached."""

    run_dir: Path
    """The run dir (`.hydra/`, `metrics.jsonl`, `train.log`, `checkpoints/`)."""
    final_eval: float | None
    """Mean raw return of the final evaluation (over `eval.episodes`); None when the run stopped
    before it (interrupted, diverged)."""
    global_step: int
    """Env steps trained when it stopped."""
    stopped_because: str
    """budget (trained to `total_timesteps`, now or by an earlier call or command in the same
    run dir), stopped (a stopping rule `stop.*`; `message` says which), interrupted (a stop
    signal; checkpoint written), diverged (a non-finite value; the last good checkpoint kept) or
    callback failed (a callback's hook raised; checkpoint written)."""
    message: str
    """One line saying how it ended (what the command line prints, where it prints one)."""
    checkpoint: Path | None
    """`checkpoints/last.pt`: the run's latest state, to resume or load; None if none was written."""
    best_checkpoint: Path | None
    """`checkpoints/best.pt`: the state of the best evaluation; None if none was written."""
    config: TrainConfig = field(repr=False)
    """The composed, typed config the run trained with."""


def train(overrides: Sequence[str] | str = (), /, **options: Any) -> RunResult:
    """Train one run in this process, as `rlrun <overrides>` does, and return its result.

    Args:
        overrides: `key=value` strings as typed on the command line (`["algo=sac",
            "eval.episodes=2"]`), or one string of them (`"algo=sac eval.episodes=2"`).
        **options: More overrides: `algo="sac"`, `total_timesteps=2000`, a section as a dict
            (`eval={"episodes": 2}`), dotted keys through `**{"eval.episodes": 2}`, and `env=`
            an env id or a callable that makes a new env (a `gymnasium.Env` subclass, or a
            function returning one); `callbacks=` may hold objects made in Python beside the
            config's entries; `config_dir=` a dir (or a list) of the user's configs, as
            `rlrun --config-dir DIR`.

    Raises:
        ConfigError: a mistake in the overrides, in the command line's one line
            (CheckpointError: a checkpoint to resume that is missing or does not fit).
        RunInProgressError: another call is training in this process.
    """
    if not _ONE_RUN.acquire(blocking=False):
        raise RunInProgressError(
            "rlrun.train is already running in this process (one run at a time, from any "
            "thread): wait for it to return, or train in another process"
        )
    try:
        with _process_state_kept():
            arguments = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
            return _train(arguments, options)
    finally:
        _ONE_RUN.release()


# ----- training -----------------------------------------------------------------------------
def _train(arguments: list[str], options: dict[str, Any]) -> RunResult:
    """`train` under the lock: the overrides, the env given in Python registered, then the run."""
    from rlrun.cli.arguments import rewrite
    from rlrun.cli.config_dirs import take_from_argv, use_recorded
    from rlrun.config import ConfigError
    from rlrun.envs.python_env import check_callable, describe, env_id_of, registered

    env = options.get("env")
    make = options.pop("env") if env is not None and not isinstance(env, str) else None
    objects = _callback_objects(options)
    config_dirs = options.pop("config_dir", None)
    config_dirs = [config_dirs] if isinstance(config_dirs, (str, PathLike)) else config_dirs or []
    use_recorded([])  # a run resumed by an earlier call recorded its config dirs
    lines = take_from_argv([*(f"--config-dir={d}" for d in config_dirs),
                            *rewrite(_command_line(arguments, options))])
    resume = _one_run(lines)
    if make is None:
        return _run(lines, None, objects)
    check_callable(make)
    if any(line.partition("=")[0] == "env" for line in lines):
        raise ConfigError("env= is given twice: give the callable that makes the env alone")
    if resume is None:
        env_id = env_id_of(make)
        lines = [*lines, f"env={env_id}"]
    else:  # the checkpoint's env id, which its config and overrides name
        env_id = python_env_id(resume, "continue it with rlrun.train(resume='{run}')")
    with registered(env_id, make):
        return _run(lines, describe(make), objects)


def _callback_objects(options: dict[str, Any]) -> list[Any]:
    """The objects of `callbacks=[...]` made in Python, taken out of `options` (the config's
    entries, `{_target_: ...}` dicts and import paths, stay there)."""
    given = options.get("callbacks")
    if not isinstance(given, Sequence) or isinstance(given, str):
        return []
    objects = [c for c in given if not isinstance(c, (str, Mapping))]
    if objects:
        options["callbacks"] = [c for c in given if isinstance(c, (str, Mapping))]
    return objects


def _command_line(arguments: list[str], options: dict[str, Any]) -> list[str]:
    """`arguments`, then `options` as overrides (`key=value`; a dict's items as `key.item=...`)."""
    return [*arguments, *(line for key, value in options.items() for line in _overrides(key, value))]


def _overrides(key: str, value: Any) -> list[str]:
    if isinstance(value, Mapping) and value:
        return [line for name, item in value.items() for line in _overrides(f"{key}.{name}", item)]
    return [f"{key}={_literal(value)}"]


def _literal(value: Any) -> str:
    """`value` as Hydra's override grammar reads it back: null, true, 3, 0.5, [a,b], {k:v},
    a plain word, or a quoted string (a string that would read as another type or holds syntax)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from rlrun.cli.arguments import _quote

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ",".join(map(_literal, value)) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{name}:{_literal(item)}" for name, item in value.items()) + "}"
    text = str(value)
    try:
        plain = OverridesParser.create().parse_override(f"key={text}").value() == text
    except HydraException:  # not an override's value as it is (`=` in it, say)
        plain = False
    return text if plain else _quote(text)


def _one_run(lines: list[str]) -> str | None:
    """Refuse command-line flags and sweeps (a call trains one run); the path of `resume=`, or
    None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from rlrun.cli.arguments import parse_error
    from rlrun.cli.compose import resume_override
    from rlrun.config import ConfigError

    flags = [line for line in lines if line.startswith("-")]
    if flags:
        raise ConfigError(f"{flags[0]} is a flag of the rlrun command; rlrun.train takes key=value "
                          "overrides (`rlrun --cfg job` lists the keys)")
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException as error:
        raise ConfigError(parse_error(lines, error)) from None
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(f"{override.input_line} is a sweep, and rlrun.train trains one run: "
                              f"call it once per value, or sweep with `rlrun -m {override.input_line}`")
    return resume_override(parsed)


def _run(lines: list[str], python_env: str | None, callbacks: list[Any]) -> RunResult:
    """Compose and validate `lines` as the command line does, then train the run through
    Hydra's job runner (leaving Python's logging as it is)."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from rlrun.cli.compose import compose_config
    from rlrun.cli.job import run_single_job
    from rlrun.cli.setup import setup
    from rlrun.config import ConfigError
    from rlrun.registry import warn_broken

    setup()
    cfg = compose_config("train", lines, "hydra.run.dir")
    warn_broken({cfg.algo.name})
    if OmegaConf.select(cfg, "hparams_search") is not None or cfg.hydra.mode == RunMode.MULTIRUN:
        raise ConfigError("this config starts a multirun (hparams_search, hydra.mode=MULTIRUN), and "
                          "rlrun.train trains one run: start it from the command line, `rlrun -m ...`")
    failures: list[Exception] = []

    def job(job_cfg: DictConfig) -> RunResult:
        try:
            return _job(job_cfg, python_env, callbacks)
        except Exception as error:  # Hydra's job runner keeps it; raised below as it was
            failures.append(error)
            raise

    try:
        done = run_single_job(cfg, job, configure_logging=False)
    except SystemExit as stop:  # a second stop signal ends the run at once (`Run`)
        raise KeyboardInterrupt(f"stopped at once by a second signal (exit code {stop.code})") from None
    if failures:
        raise failures[0]
    return done.return_value


def _job(job_cfg: DictConfig, python_env: str | None, callbacks: list[Any]) -> RunResult:
    """The job: the command line's single run (`rlrun.cli.job.train_outcome`) with the same launch
    (overrides, `.hydra/` files, presets)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from rlrun.cli.job import BUDGET, STOPPED, train_outcome
    from rlrun.cli.train_command import job_launch

    hydra_cfg = HydraConfig.get()
    overrides = [str(line) for line in hydra_cfg.overrides.task]
    launch = job_launch(hydra_cfg, job_cfg, overrides, python_env=python_env, callbacks=callbacks)
    cfg: TrainConfig = OmegaConf.to_object(job_cfg)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    outcome = train_outcome(cfg, run_dir, launch)
    if outcome.message:
        print(f"rlrun: {outcome.message}",
              file=sys.stdout if outcome.stopped_because in (BUDGET, STOPPED) else sys.stderr)
    return _result(outcome, run_dir, cfg)


def _result(outcome: Outcome, run_dir: Path, cfg: TrainConfig) -> RunResult:
    from rlrun.run.checkpoint_files import BEST, LAST

    last, best = (run_dir / "checkpoints" / name for name in (LAST, BEST))
    return RunResult(
        run_dir=run_dir,
        final_eval=None if outcome.result is None else outcome.result.final_eval_return,
        global_step=outcome.step,
        stopped_because=outcome.stopped_because,
        message=outcome.message
        or (outcome.result is not None and outcome.result.stop_reason)
        or f"finished at step {outcome.step} (total_timesteps={cfg.total_timesteps})",
        checkpoint=last if last.is_file() else None,
        best_checkpoint=best if best.is_file() else None,
        config=cfg,
    )


@contextmanager
def _process_state_kept() -> Iterator[None]:
    """Restore what a run changes in the process: torch's thread count and deterministic switch,
    the generator states of random, numpy and torch (`rlrun.callbacks.isolated`), Hydra's global
    state, and the variable that names the env modules for sweep workers."""
    import os

    import torch
    from hydra.core.global_hydra import GlobalHydra

    from rlrun.callbacks import isolated
    from rlrun.envs.imports import SHARED

    env_modules = os.environ.get(SHARED)
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    users_hydra = GlobalHydra.instance().hydra  # rlrun composes with its own config dir
    GlobalHydra.instance().clear()
    try:
        with isolated():
            yield
    finally:
        if env_modules is None:
            os.environ.pop(SHARED, None)
        else:
            os.environ[SHARED] = env_modules
        GlobalHydra.instance().hydra = users_hydra
        if deterministic != (torch.are_deterministic_algorithms_enabled(),
                             torch.is_deterministic_algorithms_warn_only_enabled()):
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
