"""Command-line entry points: `rlrun` (train, a Hydra app), `rlrun-eval` and `rlrun-report`.

A user mistake ends with one line on stderr that names the fix and exit code 2, never a
traceback: arguments are rewritten (`rlrun.arguments`), composed and validated
(`rlrun.compose`) before Hydra takes over, and nothing is written into a run dir before the
run is accepted (its lock taken, its resume checked: `Run` writes its files once training starts).
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rlrun.arguments import rewrite
from rlrun.checkpoint import run_dir_of
from rlrun.choices import choice_rows
from rlrun.compose import (
    CONF_DIR,
    CXX_COMPILERS,
    USAGE_EXIT,
    check_compile,
    check_plugins,
    compose_checked,
    fail,
    group_options,
    job_node,
    override_lists,
    split_env_overrides,
    validate_train,
)
from rlrun.config import ConfigError, EnvConfig, EvalRunConfig, TrainConfig, register_schemas
from rlrun.config_dirs import PROVIDER, UserConfigSearchPath, take_from_argv, used_files
from rlrun.envs.config_source import GymRegistryConfigSource, GymRegistrySearchPath
from rlrun.envs.imports import import_from_overrides, registry_id
from rlrun.registry import AlgoPackagesSearchPath, algorithms, schemas, warn_broken
from rlrun.sweep import assign_gpu, job_dir_name, job_label, seed_runs, sweep_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from hydra.core.utils import JobReturn
    from torch import nn

    from rlrun.envs.factory import VecEnv
    from rlrun.envs.recording import EpisodeRecording
    from rlrun.run import Launch, RunInterrupted, TrainResult
    from rlrun.search.trial import TrialReporter

__all__ = ["CONF_DIR", "CXX_COMPILERS", "USAGE_EXIT", "check_compile", "compose_checked", "evaluate", "report",
           "train", "validate_train"]


def _run_dir(resume: str | None, default: str) -> str:
    """hydra.run.dir: a resumed run continues in its own dir."""
    if resume is None:
        return default
    path = Path(resume).expanduser()
    return str(path if path.is_dir() else run_dir_of(path))


def _quiet_warnings() -> None:
    """Silence warnings about choices the user made on purpose.

    Also run on import: sweep worker processes (joblib, submitit) import this module, to unpickle
    the task function, before they compose their job's config.
    """
    import warnings

    # Gymnasium warns on every make() of an older version (Hopper-v4): the user chose it.
    warnings.filterwarnings("ignore", message=".*is out of date.*")
    # conf/hydra/launcher/submitit_*.yaml set values over the plugin's schema of the same name.
    warnings.filterwarnings(
        "ignore", message=r"(?s).*is validated against ConfigStore schema with the same name"
    )


_quiet_warnings()


def _setup() -> None:
    _quiet_warnings()
    Plugins.instance().register(GymRegistryConfigSource)
    Plugins.instance().register(GymRegistrySearchPath)
    Plugins.instance().register(AlgoPackagesSearchPath)
    Plugins.instance().register(UserConfigSearchPath)
    register_schemas(schemas())
    if not OmegaConf.has_resolver("rlrun_run_dir"):
        OmegaConf.register_new_resolver("rlrun_run_dir", _run_dir)
        OmegaConf.register_new_resolver("rlrun_algos", lambda: " | ".join(schemas()))
        OmegaConf.register_new_resolver("rlrun_job_dir", job_dir_name)
        OmegaConf.register_new_resolver("rlrun_env_dir", registry_id)
        OmegaConf.register_new_resolver("rlrun_options", lambda group: " | ".join(group_options(group)))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _train_app(cfg: DictConfig) -> float:
    """One job of Hydra's entry point (sweeps, Hydra's flags): `_train_job` with its checks."""
    return _train_job(cfg)


def _config_files(cfg: DictConfig, overrides: list[str]) -> dict[str, str]:
    """The `.hydra/` files of a run dir (composed config, Hydra's config, overrides) as text."""
    return {
        ".hydra/config.yaml": OmegaConf.to_yaml(cfg),
        ".hydra/hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
        ".hydra/overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(overrides)),
    }


def _train_job(cfg: DictConfig, validated: bool = False) -> float:
    """One job: train (once per seed under hparams_search); the final eval return (seed mean).
    `validated`: this config already passed `validate_train` in this process."""
    from rlrun.run import RunPruned

    try:
        typed: TrainConfig = OmegaConf.to_object(cfg)
        if not validated:
            validate_train(typed)
        hydra_cfg = HydraConfig.get()
        job_dir = Path(hydra_cfg.runtime.output_dir)
        sweep, label = None, ""
        if hydra_cfg.mode == RunMode.MULTIRUN:
            launcher = hydra_cfg.runtime.choices.get("hydra/launcher")
            assign_gpu(typed.device, launcher, hydra_cfg.job.num)
            sweep = sweep_name(hydra_cfg.sweep.dir)
            label = job_label(hydra_cfg.job.num, hydra_cfg.job.override_dirname)
        overrides = [str(line) for line in hydra_cfg.overrides.task]
        runs = ([(typed, cfg, overrides, job_dir)] if typed.hparams_search is None
                else seed_runs(typed, cfg, overrides, job_dir))
        reporters = _trial_reporters(hydra_cfg, typed, len(runs))
        returns = []
        for index, (seed_cfg, seed_node, seed_overrides, run_dir) in enumerate(runs):
            launch = job_launch(hydra_cfg, seed_node, seed_overrides, sweep=sweep, label=label,
                                trial=reporters[index] if reporters else None)
            try:
                returns.append(_train_run(seed_cfg, run_dir, launch))
            except RunPruned as pruned:
                return pruned.value  # the trial's seeds after this one are not trained
        return statistics.fmean(returns)
    except ConfigError as error:
        fail(str(error))


def _trial_reporters(
    hydra_cfg: DictConfig, typed: TrainConfig, seeds: int
) -> list[TrialReporter] | None:
    """Under rlrun's Optuna sweeper, one reporter to the job's trial per seed run; else None."""
    if hydra_cfg.mode != RunMode.MULTIRUN or hydra_cfg.sweeper.get("trial") is None:
        return None
    from rlrun.search.trial import trial_reporters

    return trial_reporters(hydra_cfg.sweeper, typed.total_timesteps, seeds, typed.eval.every_steps)


PRESET_GROUPS = ("preset", "preset/env", "experiment")
"""The groups whose files the start panel lists as presets, in the order they apply."""


def job_launch(hydra_cfg: DictConfig, node: DictConfig, overrides: list[str], **extra: Any) -> Launch:
    """The `Launch` of a job Hydra composed: its overrides, `.hydra/` files, the preset and
    experiment files applied in order (Hydra names an optional choice even when its file is
    absent: those are left out), the user's config files of other groups (each saying which
    shipped file it replaces) and dirs, the optimizer and network rows of the start panel, and
    `extra` (`rlrun.run.Launch`'s other fields)."""
    from rlrun.run import Launch

    runtime = hydra_cfg.runtime
    used = used_files(runtime.choices, runtime.config_sources, Path(CONF_DIR))
    presets = [f for group in PRESET_GROUPS for f in used if f.group == group]
    return Launch(
        overrides,
        _config_files(node, overrides),
        [str(f) for f in presets],
        user_configs=[str(f) for f in used if f.yours and f.group not in PRESET_GROUPS],
        config_dirs=[f"{s.schema}://{s.path}" for s in runtime.config_sources
                     if s.provider == PROVIDER],
        choices=choice_rows(runtime.choices, [f.path for f in presets], overrides, Path(CONF_DIR)),
        **extra,
    )


def _train_run(cfg: TrainConfig, run_dir: Path, launch: Launch) -> float:
    """Train one run (`train_outcome`) and say how it ended (a sweep job's line starts with its
    label); its final eval return. A stop signal exits 128 + its number, a divergence exits 1."""
    from rlrun.run import RunPruned

    said = f"{launch.label} rlrun:" if launch.label else "rlrun:"  # a sweep job's lines: labelled
    try:
        outcome = train_outcome(cfg, run_dir, launch)
    except RunPruned as pruned:
        print(f"{said} {pruned}")
        raise
    if outcome.interrupted is not None:
        print(f"{said} {outcome.message}", file=sys.stderr)
        outcome.interrupted.pass_on()  # under submitit: requeue the job, which resumes from the checkpoint
        raise SystemExit(outcome.interrupted.exit_code) from None
    if outcome.stopped_because in (DIVERGED, CALLBACK_FAILED):
        print(f"{said} {outcome.message}", file=sys.stderr)
        raise SystemExit(1) from None
    if outcome.message:
        print(f"{said} {outcome.message}")
    return outcome.result.final_eval_return


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
    from rlrun.lock import RunLock
    from rlrun.ops.optim import NonFiniteError
    from rlrun.run import Run, RunInterrupted, RunPruned, finished_result

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


def train() -> None:
    """`rlrun [overrides]`: validate the overrides (each group choice of a sweep), then run Hydra."""
    _setup()
    try:
        sys.argv[1:] = take_from_argv(rewrite(sys.argv[1:]))
    except ConfigError as error:
        fail(str(error))
    override_sets, check_args = override_lists(sys.argv[1:])
    if {"--help", "-h"} & set(sys.argv[1:]) and _print_help(sys.argv[1:], override_sets[0]):
        return
    if not check_args:  # --help, --info: Hydra composes at once, with the env modules imported
        try:
            import_from_overrides(override_sets[0])
        except ConfigError as error:
            fail(str(error))
    if check_args:
        check_plugins(override_sets[0])
        multirun = bool({"-m", "--multirun"} & set(sys.argv[1:]))
        if multirun and any(o.partition("=")[0].lstrip("+") == "resume.path" for o in override_sets[0]):
            fail("resume= continues one run; to continue a sweep, re-run its command with "
                 "hydra.sweep.dir=<its sweep dir>")
        if not multirun and _shows_job_config(sys.argv[1:]):
            # the config a run would train (with the CNN for images), checked but for what needs
            # the algorithm's code or a logger's server: a run checks those
            print(OmegaConf.to_yaml(compose_checked("train", override_sets[0], validate=False)), end="")
            return
        output_dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        composed = [compose_checked("train", overrides, output_dir_key if i == 0 else None)
                    for i, overrides in enumerate(override_sets)]
        warn_broken({cfg.algo.name for cfg in composed})
        _check_search(composed[0].hydra.sweeper, sys.argv[1:])
        if multirun:
            _check_sweep(composed[0], sys.argv[1:])
        plain = override_sets == [sys.argv[1:]]  # no flags, no sweep syntax
        if plain and composed[0].hydra.mode != RunMode.MULTIRUN:  # (a search config may set MULTIRUN)
            _run_single(composed[0])
            return
    _train_app()


def _print_help(argv: list[str], overrides: list[str]) -> bool:
    """Print `rlrun --help`: rlrun's help template with the config these overrides compose.
    False, for Hydra to answer, when flags pick other config files or the template shows more
    than the config: Hydra's own help lists every option of every config group for its other
    placeholders, which takes it a second more."""
    import string

    if {"--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn"} & set(argv):
        return False
    cfg = compose_checked("train", overrides, validate=False, with_hydra=True)
    template = string.Template(cfg.hydra.help.template)
    if set(template.get_identifiers()) != {"CONFIG"}:
        return False
    print(template.substitute(CONFIG=OmegaConf.to_yaml(job_node(cfg), resolve="--resolve" in argv)))
    return True


def _check_search(sweeper: DictConfig, argv: list[str]) -> None:
    """Under rlrun's Optuna sweeper, exit with one line on a setting or a search range it cannot
    use (before the sweep dir or the study is made)."""
    if not str(sweeper.get("_target_", "")).endswith(".RlrunOptunaSweeper"):
        return
    from rlrun.search.space import parse_space
    from rlrun.search.study import check_settings

    task = [arg for arg in argv if "=" in arg and not arg.startswith("-")
            and not arg.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        check_settings(sweeper)
        parse_space(None if sweeper.params is None else dict(sweeper.params), task)
    except ConfigError as error:
        fail(str(error))


def _check_sweep(cfg: DictConfig, argv: list[str]) -> None:
    """Exit with one line on a swept value its key refuses or a launcher that cannot launch here,
    before the sweep dir is made."""
    from rlrun.compose import is_group
    from rlrun.sweep_check import check_launcher, check_sweep_values

    try:
        check_launcher(cfg)
        check_sweep_values(job_node(cfg), [arg for arg in argv if "=" in arg and not arg.startswith("-")],
                           is_group)
    except ConfigError as error:
        fail(str(error))


def _shows_job_config(argv: list[str]) -> bool:
    """Whether the command line is `... --cfg job` (or `-c job`) of the whole config (no
    `--package`)."""
    return (any(flag in ("--cfg", "-c") and value == "job" for flag, value in itertools.pairwise(argv))
            and not {"--package", "-p"} & set(argv))



def _run_single(cfg: DictConfig) -> None:
    """Run one job through Hydra's job runner (`run_single_job`) with the config `compose_checked`
    composed and validated: Hydra's own entry point would compose it twice more, about 0.6 s of
    every run (and knows nothing of resume=, whose config comes from the checkpoint)."""
    from functools import partial

    from hydra._internal.utils import run_and_report

    result = run_and_report(lambda: run_single_job(cfg, partial(_train_job, validated=True)))
    run_and_report(lambda: result.return_value)


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


EVAL_USAGE = """usage: rlrun-eval <run dir or checkpoint> [key=value ...]   (or checkpoint=<path>)
  eval.episodes=10          episodes (count)
  eval.deterministic=true   mean/argmax actions (false: sample)
  eval.num_envs=5           parallel eval envs (count)
  eval.max_episode_steps=   cap of each episode (env steps; default: the training envs' limit)
  eval.seed_offset=1000003  eval envs are seeded with seed + seed_offset
  eval.video=false          record MP4s to <run dir>/eval/ (needs the video extra)
  eval.video_episodes=1     episodes recorded (count)
  eval.export=null          torchscript | onnx: write a self-contained policy file beside the checkpoint
  eval.dataset=null         namespace/name-v0: record the episodes as a Minari dataset (minari extra)
  eval.dataset_overwrite=false  replace an existing dataset of that id
  device=auto  seed=<the run's seed>  torch_threads=1
On a variant of the training env whose spaces match (the results go to <stem>.eval.<variant>.json):
  env.id=<id> (or env=<id>)  env.kwargs.<name>=<value>  ~env.kwargs.<name>
  env.max_episode_steps=N    env.wrappers=[...]    ~env.wrappers (~env.<key>: its default)"""


def evaluate() -> None:
    """`rlrun-eval <checkpoint or run dir> [eval.episodes=N ...]`: evaluate a checkpoint, print and save JSON."""
    _setup()
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(EVAL_USAGE)
        return
    try:
        arguments = rewrite(sys.argv[1:], positional_key="checkpoint")
    except ConfigError as error:
        fail(str(error))
    env_overrides, overrides = split_env_overrides(override_lists(arguments)[0][0])
    options: EvalRunConfig = OmegaConf.to_object(compose_checked("eval", overrides))
    warn_broken()
    try:
        _evaluate_checkpoint(options, env_overrides)
    except ConfigError as error:
        fail(str(error))
    except KeyboardInterrupt:
        print("rlrun-eval: interrupted; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None


def _evaluate_checkpoint(options: EvalRunConfig, env_overrides: list[str]) -> dict[str, Any]:
    """Evaluate (and export, record) `options.checkpoint` on its training env, or on the variant
    `env_overrides` make of it; print a table and write `<stem>.eval.json` (a variant's:
    `<stem>.eval.<overrides>.json`; in a read-only run dir, say so and go on). Returns the
    result written there."""
    import math
    import signal

    import torch
    from rich.table import Table

    from rlrun.envs.factory import VideoSpec, render_off_screen
    from rlrun.envs.recording import EpisodeRecording
    from rlrun.evaluation import episode_quotas
    from rlrun.evaluation import evaluate as run_evaluation
    from rlrun.extras import require
    from rlrun.ops.stats import reported_means
    from rlrun.policy_io import env_variant, load_policy
    from rlrun.run import resolve_device
    from rlrun.terminal import table_console

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends it like Ctrl-C
    started = time.time()
    recording = None
    if options.eval.dataset is not None:
        from rlrun.data.minari_datasets import check_new_dataset

        check_new_dataset(options.eval.dataset, options.eval.dataset_overwrite)  # before evaluating
        recording = EpisodeRecording(episode_quotas(options.eval.episodes, options.eval.num_envs))
    torch.set_num_threads(options.torch_threads)
    device = resolve_device(options.device)
    if options.eval.video:
        render_off_screen()  # before load_policy imports the env's modules
    loaded = load_policy(options.checkpoint, device)
    path, policy, train_cfg = loaded.path, loaded.policy, loaded.train_cfg
    _check_writable(options, path)
    state = {"algo": loaded.algo, "global_step": loaded.global_step}
    env_cfg = env_variant(train_cfg.env, env_overrides) if env_overrides else train_cfg.env
    variant = f".{job_dir_name(','.join(env_overrides))}" if env_overrides else ""
    video = None
    if options.eval.video:
        require("moviepy", "eval.video=true")
        if env_cfg.family == "classic":
            require("pygame", f"eval.video=true on {env_cfg.id}")
        video = VideoSpec(run_dir_of(path) / "eval", options.eval.video_episodes,
                          f"{path.stem}{variant}-step{state['global_step']}")
    envs = loaded.eval_envs(options.eval.num_envs, env_cfg, lambda text: print(text, file=sys.stderr),
                            video=video, max_episode_steps=options.eval.max_episode_steps,
                            record_episodes=recording)
    if options.eval.export is not None:
        _export(options.eval.export, policy, envs, path, state, env_cfg)
    seed = train_cfg.seed if options.seed is None else options.seed
    result = run_evaluation(policy, envs, options.eval.episodes, seed + options.eval.seed_offset, device,
                            options.eval.deterministic)
    envs.close()
    on = env_cfg.id
    if env_overrides:
        on += f" ({' '.join(env_overrides)}; trained on {train_cfg.env.id})"
    table = Table(title=f"{state['algo']} on {on} — {path} (step {state['global_step']})")
    info_means = reported_means(result.infos)
    for column in ("episodes", "return mean", "return std", "return IQM", "length mean",
                   *(f"{key} mean" for key in info_means)):
        table.add_column(column, justify="right")
    table.add_row(str(len(result.returns)), f"{result.mean:.2f}", f"{result.std:.2f}",
                  f"{result.iqm:.2f}", f"{result.lengths.mean():.1f}",
                  *(f"{mean:.3g}" for mean in info_means.values()))
    table_console().print(table)
    report = {
        "checkpoint": str(path), "algo": state["algo"], "env": env_cfg.id,
        "env_kwargs": env_cfg.kwargs, "env_wrappers": env_cfg.wrappers,
        "env_overrides": env_overrides, "trained_env": train_cfg.env.id,
        "global_step": state["global_step"], "episodes": len(result.returns),
        "deterministic": options.eval.deterministic, **result.metrics(),
        "returns": result.returns.tolist(), "lengths": result.lengths.tolist(),
    }
    if result.infos:  # each episode's value of the info keys it reported (null: none)
        report["final_info"] = {
            key: [None if math.isnan(value) else value for value in values.tolist()]
            for key, values in result.infos.items()
        }
    if recording is not None:
        report["dataset"] = options.eval.dataset
    out = path.with_name(f"{path.stem}.eval{variant}.json")
    try:
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    except OSError as error:  # a read-only run dir: the result above stands
        print(f"rlrun-eval: could not write {out} ({error.strerror}); the result is only in the "
              f"table above", file=sys.stderr)
    if recording is not None:
        _write_dataset(options, recording, envs, path, state)
    if video is not None:
        for file in sorted(video.folder.glob(f"{video.prefix}-env*.mp4")):
            if file.stat().st_mtime >= started:
                print(f"wrote {file}")
    return report


def _check_writable(options: EvalRunConfig, checkpoint: Path) -> None:
    """Refuse (before evaluating) an export or a video that could not be written in the run dir."""
    from rlrun.writable import creatable, write_fix

    wanted = [(f"eval.export={options.eval.export}", checkpoint.parent)] if options.eval.export else []
    if options.eval.video:
        wanted.append(("eval.video=true", run_dir_of(checkpoint) / "eval"))
    for option, folder in wanted:
        if not creatable(folder):
            raise ConfigError(f"{option} cannot write in {folder} (not writable); "
                              f"{write_fix(run_dir_of(checkpoint), 'rlrun-eval <new dir>')}")


def _write_dataset(options: EvalRunConfig, recording: EpisodeRecording, envs: VecEnv, path: Path,
                   state: dict[str, Any]) -> None:
    """Write the recorded evaluation episodes as the Minari dataset `eval.dataset` and say so."""
    from rlrun.data.minari_datasets import write_dataset

    episodes = recording.episodes()
    mode = "deterministic" if options.eval.deterministic else "sampled"
    out = write_dataset(
        options.eval.dataset, episodes, recording.env_spec(), envs.single_observation_space,
        envs.single_action_space, options.eval.dataset_overwrite,
        algorithm_name=f"rlrun {state['algo']}",
        description=f"{len(episodes)} evaluation episodes ({mode} actions) of {path} at step "
                    f"{state['global_step']}",
    )
    steps = sum(len(episode.actions) for episode in episodes)
    print(f"wrote Minari dataset {options.eval.dataset} ({len(episodes)} episodes, {steps} steps) "
          f"to {out}")


def _export(
    fmt: str, policy: nn.Module, envs: VecEnv, path: Path, state: dict[str, Any], env_cfg: EnvConfig
) -> None:
    """Write the self-contained policy file beside the checkpoint (rlrun.export) and say so."""
    from rlrun.export import export_policy

    metadata = {"algo": state["algo"], "env": env_cfg.id, "global_step": str(state["global_step"]),
                "env_kwargs": json.dumps(env_cfg.kwargs),
                "env_wrappers": json.dumps(env_cfg.wrappers),
                "observation_space": str(envs.single_observation_space),
                "action_space": str(envs.single_action_space),
                "input": f"obs: float32 (batch, {', '.join(map(str, envs.single_observation_space.shape))})"}
    out, difference = export_policy(policy, envs.single_observation_space, envs.single_action_space,
                                    envs.obs_normalizer, fmt, path, metadata)
    print(f"wrote {out} (max |action difference| from the checkpoint's policy: {difference:.3g})")


def report() -> None:
    """`rlrun-report PATH... [--out DIR] [--compare KEY=A,B]`: tables, learning curves, aggregates
    across envs, performance profiles and probabilities of improvement in report.md."""
    import argparse

    from rlrun.references import SCORES, load_references
    from rlrun.stats import RESAMPLES

    parser = argparse.ArgumentParser(
        prog="rlrun-report",
        description="Aggregate run dirs (or sweep dirs holding them) into a table, learning-curve PNGs "
                    "and report.md; seeds are the replicates.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs or dirs that hold run dirs")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: <first PATH>/report)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES,
                        help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default %(default)s)")
    parser.add_argument("--reference", nargs="?", const=SCORES, type=Path, default=None, metavar="CSV",
                        help="set the results beside published figures (default CSV: rlrun's "
                             "reference/scores.csv)")
    parser.add_argument("--compare", action="append", default=[], metavar="KEY=A,B",
                        help="probability of improvement of the groups with KEY=A over those with "
                             "KEY=B, all else equal (repeatable; e.g. --compare algo=ppo,a2c); by "
                             "default every pair that differs in one key, when there are few")
    args = parser.parse_args()
    from rlrun.report import write_report  # after --help, which needs none of matplotlib, rliable

    try:
        references = load_references(args.reference) if args.reference is not None else None
        write_report(args.paths, args.out or args.paths[0] / "report", args.resamples, args.seed, references,
                     args.compare)
    except ConfigError as error:
        fail(str(error))
