"""Command-line entry points: `rlrun` (train, Hydra app) and `rlrun-eval` (evaluate a checkpoint).

A user mistake ends with one line on stderr that names the fix and exit code 2, never a
traceback: overrides are composed and validated once before Hydra takes over.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import itertools
import json
import re
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.core.plugins import Plugins
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from rlrun.checkpoint import run_dir_of
from rlrun.config import ConfigError, EvalRunConfig, TrainConfig, register_schemas
from rlrun.envs.config_source import GymRegistryConfigSource, registered_env_ids
from rlrun.registry import AlgoSpec, algorithms
from rlrun.sweep import assign_gpu, job_dir_name, seed_runs

if TYPE_CHECKING:
    from torch import nn

    from rlrun.envs.factory import VecEnv

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
USAGE_EXIT = 2
CXX_COMPILERS = ("g++", "c++", "clang++")
"""C++ compilers torch.compile's inductor can build its kernels with."""

# Hydra command-line flags that take a value (their value is not an override).
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}
_NO_CHECK_FLAGS = {"--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc", "--info", "-i"}
# The Hydra plugin package (the [sweep] extra) that each launcher or sweeper choice needs.
_PLUGINS = {"joblib": "hydra-joblib-launcher", "submitit_local": "hydra-submitit-launcher",
            "submitit_slurm": "hydra-submitit-launcher", "ray": "hydra-ray-launcher",
            "optuna": "hydra-optuna-sweeper"}


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
    register_schemas({name: spec.config for name, spec in algorithms().items()})
    if not OmegaConf.has_resolver("rlrun_run_dir"):
        OmegaConf.register_new_resolver("rlrun_run_dir", _run_dir)
        OmegaConf.register_new_resolver("rlrun_algos", lambda: " | ".join(sorted(algorithms())))
        OmegaConf.register_new_resolver("rlrun_job_dir", job_dir_name)


def _fail(message: str) -> None:
    print(f"rlrun: {message}", file=sys.stderr)
    raise SystemExit(USAGE_EXIT)


def _close(word: str, options: list[str]) -> str:
    matches = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def _explain(error: Exception, config_name: str) -> str:
    """One line for a composition or validation error."""
    text = str(error)
    missing = re.search(r"Could not find '([\w/]+?)/(.+?)'", text)
    if isinstance(error, MissingConfigException) and missing:
        group, option = missing.groups()
        if group == "env":
            return f"unknown env '{option}'{_close(option, registered_env_ids())} (any Gymnasium id works)"
        if group == "algo":
            names = sorted(algorithms())
            return f"unknown algo '{option}'{_close(option, names)} (choose from {', '.join(names)})"
        options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
        return f"unknown {group} '{option}'{_close(option, options)} (choose from {', '.join(options)})"
    unknown = re.search(r"Could not override '(.+?)'", text) or re.search(r"Key '(.+?)' not in", text)
    if unknown:
        key = unknown.group(1)
        return (f"unknown key '{key}'; check the spelling (`rlrun --cfg job` lists every key), "
                f"or add a new key with +{key}=...")
    cause = error.__cause__ or error
    merging = re.search(r"Error merging override (\S+)", text)
    detail = str(cause).strip().splitlines()[0]
    if merging:
        return f"invalid override {merging.group(1)}: {detail}"
    return detail or f"invalid {config_name} config ({type(error).__name__})"


def _overrides(argv: list[str]) -> tuple[list[list[str]], bool]:
    """The override lists to validate before Hydra runs, and whether to check them.

    A sweep is checked at its first value (an interval at its start), except a sweep of a group
    choice (`algo=ppo,a2c`, `env=...`): every combination of those values is checked, so a typo
    in any of them fails before the first job starts.
    """
    overrides, skip_next, check_args = [], False, True
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        if arg in _NO_CHECK_FLAGS:
            check_args = False
        if arg.startswith("-"):
            skip_next = arg in _FLAGS_WITH_VALUE and arg not in ("--info", "-i")
            continue
        overrides.append(arg)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:  # Hydra's grammar errors
        _fail(f"cannot parse overrides: {str(error).strip().splitlines()[0]}")
    options = []
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            options.append([override.input_line])
        elif isinstance(override.value(), IntervalSweep):
            options.append([f"{key}={override.value().start}"])
        else:
            values = [f"{key}={value}" for value in override.sweep_string_iterator()]
            options.append(values if _is_group(key) else values[:1])
    return [list(combination) for combination in itertools.product(*options)], check_args


def _is_group(key: str) -> bool:
    return key == "env" or (Path(CONF_DIR) / key).is_dir()


def _check_plugins(overrides: list[str]) -> None:
    """Exit with the install command when a launcher or sweeper's Hydra plugin is missing."""
    for line in overrides:
        key, _, choice = line.partition("=")
        choice = "optuna" if key == "hparams_search" and choice != "null" else choice
        if key in ("hydra/launcher", "hydra/sweeper", "hparams_search") and choice in _PLUGINS:
            module = "hydra_plugins." + _PLUGINS[choice].replace("-", "_")
            if importlib.util.find_spec(module) is None:
                _fail(f"{line} needs the {_PLUGINS[choice]} package: pip install -e '.[sweep]'")


def compose_checked(config_name: str, overrides: list[str], output_dir_key: str | None = None) -> DictConfig:
    """Compose and validate (types, unknown keys, values, and the output dir at `output_dir_key`,
    e.g. hydra.run.dir, when given); exit 2 with one line on a mistake. Returns the composed
    config, with its `hydra` node when `output_dir_key` is given."""
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=config_name):
            cfg = compose(config_name=config_name, overrides=overrides,
                          return_hydra_config=output_dir_key is not None)
        job_cfg, output_dir = cfg, None
        if output_dir_key is not None:
            output_dir = OmegaConf.select(cfg, output_dir_key)
            job_cfg = copy.deepcopy(cfg)
            with open_dict(job_cfg):
                del job_cfg["hydra"]
        typed = OmegaConf.to_object(job_cfg)
        if config_name == "train":
            validate_train(typed)
    except ConfigError as error:
        _fail(str(error))
    except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException) as error:
        _fail(_explain(error, config_name))
    if output_dir is not None:
        _check_output_dir(Path(output_dir), output_dir_key)
    return cfg


def _check_output_dir(target: Path, key: str) -> None:
    """Exit with one line when the run (or sweep) dir `target`, set by `key`, cannot be created or written."""
    import os

    target = target.expanduser().absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a directory" if not existing.is_dir() else "is not writable"
        _fail(f"cannot create the output dir {target}: {existing} {problem}; set {key}=<writable dir>")


def validate_train(cfg: TrainConfig) -> None:
    """Checks that span groups: the env exists and builds, and the algorithm can act in it."""
    from rlrun.envs.factory import env_spaces

    spec = algorithms()[cfg.algo.name]
    if cfg.compile:
        check_compile(spec)
    if spec.check_task is not None:  # an in-process task (env=lm), not a Gymnasium env
        spec.check_task(cfg)
        return
    obs_space, action_space = env_spaces(cfg.env)
    if spec.check_spaces is not None:
        spec.check_spaces(obs_space, action_space)


def check_compile(spec: AlgoSpec) -> None:
    """`compile=true` needs an algorithm that uses it and a C++ compiler for torch.compile's kernels."""
    if not spec.compiles:
        users = ", ".join(name for name, other in algorithms().items() if other.compiles)
        raise ConfigError(f"compile=true applies to algo={users}; algo={spec.name} has no minibatch loss to "
                          "compile: drop compile=true")
    if not any(shutil.which(compiler) for compiler in CXX_COMPILERS):
        raise ConfigError("compile=true needs a C++ compiler (g++ or clang++) on the PATH for torch.compile: "
                          "install one (e.g. apt install g++) or drop compile=true")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _train_app(cfg: DictConfig) -> float:
    """One job of Hydra's entry point (sweeps, Hydra's flags): `_train_job` with its checks."""
    return _train_job(cfg)


def _train_job(cfg: DictConfig, validated: bool = False) -> float:
    """One job: train (once per seed under hparams_search); the final eval return (seed mean).
    `validated`: this config already passed `validate_train` in this process."""
    try:
        typed: TrainConfig = OmegaConf.to_object(cfg)
        if not validated:
            validate_train(typed)
        hydra_cfg = HydraConfig.get()
        job_dir = Path(hydra_cfg.runtime.output_dir)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            launcher = hydra_cfg.runtime.choices.get("hydra/launcher")
            assign_gpu(typed.device, launcher, hydra_cfg.job.num)
        if typed.hparams_search is None:
            return _train_run(typed, job_dir)
        runs = seed_runs(typed, cfg, list(hydra_cfg.overrides.task), job_dir)
        return statistics.fmean(_train_run(seed_cfg, run_dir) for seed_cfg, run_dir in runs)
    except ConfigError as error:
        _fail(str(error))


def _train_run(cfg: TrainConfig, run_dir: Path) -> float:
    """Train one run in `run_dir`; its final eval return (a finished run is not trained again)."""
    from rlrun.ops.optim import NonFiniteError
    from rlrun.run import Run, RunInterrupted, finished_result

    done = finished_result(cfg, run_dir)
    if done is not None:
        print(f"rlrun: {run_dir} already finished at step {done.global_step}; its recorded final "
              f"eval return is {done.final_eval_return:.2f} (not retrained)")
        return done.final_eval_return
    spec = algorithms()[cfg.algo.name]
    run = Run(cfg, run_dir)
    try:
        return spec.train(cfg, run).final_eval_return
    except RunInterrupted as interrupted:
        print(f"rlrun: {interrupted}", file=sys.stderr)
        interrupted.pass_on()  # under submitit: requeue the job, which resumes from the checkpoint
        raise SystemExit(interrupted.exit_code) from None
    except NonFiniteError as error:
        run.close()
        print(f"rlrun: {run.divergence_message(error)}", file=sys.stderr)
        raise SystemExit(1) from None
    except BaseException:
        run.close()
        raise


def _resume_alias(arg: str) -> str:
    """`resume=<path>` is short for `resume.path=<path>` (the `resume` node also holds
    `allow_config_change`)."""
    match = re.fullmatch(r"\+{0,2}resume=(.*)", arg, flags=re.DOTALL)
    return f"resume.path={match.group(1)}" if match else arg


def train() -> None:
    """`rlrun [overrides]`: validate the overrides (each group choice of a sweep), then run Hydra."""
    _setup()
    sys.argv[1:] = [_resume_alias(arg) for arg in sys.argv[1:]]
    override_lists, check_args = _overrides(sys.argv[1:])
    if check_args:
        _check_plugins(override_lists[0])
        multirun = bool({"-m", "--multirun"} & set(sys.argv[1:]))
        output_dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        composed = [compose_checked("train", overrides, output_dir_key if i == 0 else None)
                    for i, overrides in enumerate(override_lists)]
        plain = override_lists == [sys.argv[1:]]  # no flags, no sweep syntax
        if plain and composed[0].hydra.mode != RunMode.MULTIRUN:  # (a search config may set MULTIRUN)
            _run_single(composed[0])
            return
    _train_app()


def _run_single(cfg: DictConfig) -> None:
    """Run one job through Hydra's job runner (run dir, `.hydra/` files, logging, callbacks)
    with the config `compose_checked` composed and validated: Hydra's own entry point would
    compose it twice more, about 0.6 s of every run."""
    from functools import partial

    from hydra._internal.callbacks import Callbacks
    from hydra._internal.utils import run_and_report
    from hydra.core.utils import JobRuntime, configure_log, run_job
    from hydra.types import HydraContext

    if cfg.hydra.mode is None:  # as Hydra's entry point does for a run
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.mode = RunMode.RUN
            cfg.hydra.overrides.hydra.append("hydra.mode=RUN")
    JobRuntime.instance().set("name", cfg.hydra.job.name)
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name="train")
    result = run_and_report(lambda: run_job(
        task_function=partial(_train_job, validated=True), config=cfg, job_dir_key="hydra.run.dir",
        job_subdir_key=None, hydra_context=HydraContext(config_loader=None, callbacks=callbacks),
    ))
    callbacks.on_run_end(config=cfg, config_name="train", job_return=result)
    run_and_report(lambda: result.return_value)


def evaluate() -> None:
    """`rlrun-eval checkpoint=PATH [eval.episodes=N ...]`: evaluate a checkpoint, print and save JSON."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from rlrun.envs.factory import VideoSpec, make_vec_env
    from rlrun.evaluation import evaluate as run_evaluation
    from rlrun.policy_io import load_policy
    from rlrun.run import resolve_device

    _setup()
    overrides = _overrides(sys.argv[1:])[0][0]
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print("usage: rlrun-eval checkpoint=PATH [eval.episodes=10] [eval.deterministic=true] [device=auto] [seed=0]\n"
              "                  [eval.video=false] [eval.video_episodes=1] [eval.export=torchscript|onnx]")
        return
    options: EvalRunConfig = OmegaConf.to_object(compose_checked("eval", overrides))
    started = time.time()
    try:
        torch.set_num_threads(options.torch_threads)
        device = resolve_device(options.device)
        loaded = load_policy(options.checkpoint, device)
        path, policy, train_cfg = loaded.path, loaded.policy, loaded.train_cfg
        state = {"algo": loaded.algo, "global_step": loaded.global_step}
        video = None
        if options.eval.video:
            video = VideoSpec(run_dir_of(path) / "eval", options.eval.video_episodes,
                              f"{path.stem}-step{state['global_step']}")
        envs = make_vec_env(train_cfg.env, options.eval.num_envs, training=False, video=video)
        envs.obs_normalizer = loaded.obs_normalizer(envs.single_observation_space)
        if options.eval.export is not None:
            _export(options.eval.export, policy, envs, path, state, train_cfg)
        result = run_evaluation(
            policy, envs, options.eval.episodes, options.seed + options.eval.seed_offset, device,
            options.eval.deterministic,
        )
        envs.close()
    except ConfigError as error:
        _fail(str(error))
    table = Table(title=f"{state['algo']} on {train_cfg.env.id} — {path.name} (step {state['global_step']})")
    for column in ("episodes", "return mean", "return std", "return IQM", "length mean"):
        table.add_column(column, justify="right")
    table.add_row(str(len(result.returns)), f"{result.mean:.2f}", f"{result.std:.2f}",
                  f"{result.iqm:.2f}", f"{result.lengths.mean():.1f}")
    Console().print(table)
    report = {
        "checkpoint": str(path), "algo": state["algo"], "env": train_cfg.env.id,
        "global_step": state["global_step"], "episodes": len(result.returns),
        "deterministic": options.eval.deterministic, **result.metrics(),
        "returns": result.returns.tolist(), "lengths": result.lengths.tolist(),
    }
    out = path.with_name(f"{path.stem}.eval.json")
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    if video is not None:
        for file in sorted(video.folder.glob(f"{video.prefix}-env*.mp4")):
            if file.stat().st_mtime >= started:
                print(f"wrote {file}")


def _export(
    fmt: str, policy: nn.Module, envs: VecEnv, path: Path, state: dict[str, Any], train_cfg: TrainConfig
) -> None:
    """Write the self-contained policy file beside the checkpoint (rlrun.export) and say so."""
    from rlrun.export import export_policy

    metadata = {"algo": state["algo"], "env": train_cfg.env.id, "global_step": str(state["global_step"]),
                "observation_space": str(envs.single_observation_space),
                "action_space": str(envs.single_action_space)}
    out, difference = export_policy(policy, envs.single_observation_space, envs.single_action_space,
                                    envs.obs_normalizer, fmt, path, metadata)
    print(f"wrote {out} (max |action difference| from the checkpoint's policy: {difference:.3g})")


def report() -> None:
    """`rlrun-report PATH... [--out DIR]`: tables, learning curves and report.md for run or sweep dirs."""
    import argparse

    from rlrun.report import RESAMPLES, write_report

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
    args = parser.parse_args()
    try:
        write_report(args.paths, args.out or args.paths[0] / "report", args.resamples, args.seed)
    except ConfigError as error:
        _fail(str(error))
