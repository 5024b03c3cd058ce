"""Command-line entry points: `rlrun` (train, a Hydra app), `rlrun-eval` and `rlrun-report`.

A user mistake ends with one line on stderr that names the fix and exit code 2, never a
traceback: arguments are rewritten (`rlrun.cli.arguments`), composed and validated
(`rlrun.cli.compose`) before Hydra takes over, and nothing is written into a run dir before the
run is accepted (its lock taken, its resume checked: `Run` writes its files once training starts).

`rlrun` lives here; `rlrun-eval` in `rlrun.cli.eval_command`, `rlrun-report` in `rlrun.cli.report_command`, one
training job (the run under its lock, Hydra's job runner) in `rlrun.cli.job`, and what every
command sets up first in `rlrun.cli.setup`.
"""

from __future__ import annotations

import itertools
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlrun.cli.arguments import rewrite
from rlrun.cli.choices import choice_rows
from rlrun.cli.compose import (
    CONF_DIR,
    CXX_COMPILERS,
    USAGE_EXIT,
    check_compile,
    check_plugins,
    compose_checked,
    fail,
    job_node,
    override_lists,
    validate_train,
)
from rlrun.cli.config_dirs import PROVIDER, take_from_argv, used_files
from rlrun.cli.eval_command import evaluate
from rlrun.cli.job import CALLBACK_FAILED, DIVERGED, run_single_job, train_outcome
from rlrun.cli.report_command import report
from rlrun.cli.setup import closed_pipe_ends_quietly
from rlrun.cli.setup import setup as _setup
from rlrun.cli.sweep_jobs import assign_gpu, job_label, seed_runs, sweep_name
from rlrun.config import ConfigError, TrainConfig
from rlrun.envs.imports import import_from_overrides
from rlrun.registry import warn_broken

if TYPE_CHECKING:
    from rlrun.run.facade import Launch
    from rlrun.search.trial import TrialReporter

__all__ = ["CONF_DIR", "CXX_COMPILERS", "USAGE_EXIT", "check_compile", "compose_checked", "evaluate", "report",
           "train", "validate_train"]


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
    from rlrun.run.facade import RunPruned

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
    `extra` (`rlrun.run.facade.Launch`'s other fields)."""
    from rlrun.export.rebuild import load_policy
    from rlrun.run.facade import Launch

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
        load_policy=load_policy,
        **extra,
    )


def _train_run(cfg: TrainConfig, run_dir: Path, launch: Launch) -> float:
    """Train one run (`train_outcome`) and say how it ended (a sweep job's line starts with its
    label); its final eval return. A stop signal exits 128 + its number, a divergence exits 1."""
    from rlrun.run.facade import RunPruned

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


@closed_pipe_ends_quietly
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
    from rlrun.cli.compose import is_group
    from rlrun.cli.sweep_check import check_launcher, check_sweep_values

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
