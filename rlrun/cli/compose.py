"""Composing and validating a command line's config before anything runs or is written.

A user mistake is one line that names the fix, never a traceback: `compose_config` raises it as
a ConfigError (which the Python API passes on), `compose_checked` prints it on stderr and exits
with code 2. Composing refuses unknown keys with the nearest known ones (`+key=` included), picks
the CNN for image observations, and, for `resume=<path>`, builds the resumed run's config from
its checkpoint with the typed keys on top. The one-line messages are written by
`rlrun.cli.compose_messages`, the checks beyond the config's own values by `rlrun.cli.validate`.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from rlrun.cli.arguments import FLAGS_WITH_VALUE, PRINTING_FLAGS, key_of, parse_error
from rlrun.cli.compose_messages import (
    check_added_keys,
    check_group_values,
    explain,
    naming_user_file,
)
from rlrun.cli.config_dirs import (
    CONF_DIR,
    group_options,
    hydra_compose,
    is_group,
    use_recorded,
)
from rlrun.cli.validate import CXX_COMPILERS, check_compile, validate_train
from rlrun.config import ConfigError
from rlrun.config.flat import flatten
from rlrun.envs.imports import import_from_overrides, load, share
from rlrun.extras import install_hint
from rlrun.registry import schemas as algo_schemas
from rlrun.run.checkpoint_files import CheckpointError, resolve_checkpoint, run_dir_of
from rlrun.run.resume import check_algo, check_python_env, known_part, read_checkpoint
from rlrun.run.writable import writable, write_fix

__all__ = [  # the names the entry points and the Python API import from here
    "CONF_DIR",
    "CXX_COMPILERS",
    "USAGE_EXIT",
    "check_compile",
    "check_plugins",
    "compose_checked",
    "compose_config",
    "fail",
    "group_options",
    "is_group",
    "job_node",
    "override_lists",
    "resume_override",
    "split_env_overrides",
    "validate_train",
]

USAGE_EXIT = 2
"""The exit code of a command line refused before anything runs."""
_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweep"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "rlrun_optuna": ("optuna", "optuna", "sweep"),
}
"""A launcher or sweeper choice -> the module it needs, its package and the rlrun extra."""


def fail(message: str) -> None:
    print(f"rlrun: {message}", file=sys.stderr)
    raise SystemExit(USAGE_EXIT)


def split_env_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the `env=` and `env.*` overrides, the others): rlrun-eval applies the first to the
    checkpoint's env (`rlrun.export.rebuild.env_variant`)."""
    env = [o for o in overrides if key_of(o) == "env" or key_of(o).startswith("env.")]
    return env, [o for o in overrides if o not in env]


def job_node(cfg: DictConfig) -> DictConfig:
    """`cfg` without its `hydra` node."""
    if "hydra" not in cfg:
        return cfg
    job = copy.deepcopy(cfg)
    with read_write(job), open_dict(job):
        del job["hydra"]
    return job


# ----- sweeps and plugins -----------------------------------------------------------------------
def override_lists(argv: list[str]) -> tuple[list[list[str]], bool]:
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
        if arg in PRINTING_FLAGS:
            check_args = False
        if arg.startswith("-"):
            skip_next = arg in FLAGS_WITH_VALUE
            continue
        overrides.append(arg)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        fail(parse_error(overrides, error))
    options = []
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            options.append([override.input_line])
        elif isinstance(override.value(), IntervalSweep):
            options.append([f"{key}={override.value().start}"])
        elif isinstance(override.value(), Glob):  # a glob over a group's options (a suite's cases)
            names = group_options(override.key_or_group)
            options.append(
                [f"{override.get_key_element()}={name}" for name in override.value().filter(names)]
            )
        else:
            values = [f"{key}={value}" for value in override.sweep_string_iterator()]
            options.append(values if is_group(key) else values[:1])
    return [list(combination) for combination in itertools.product(*options)], check_args


def check_plugins(overrides: list[str]) -> None:
    """Exit with the install command when a launcher or sweeper's Hydra plugin is missing."""
    for line in overrides:
        key, _, choice = line.partition("=")
        choice = "rlrun_optuna" if key == "hparams_search" and choice != "null" else choice
        if key in ("hydra/launcher", "hydra/sweeper", "hparams_search") and choice in _PLUGINS:
            module, package, extra = _PLUGINS[choice]
            if importlib.util.find_spec(module) is None:
                fail(
                    f"{line} needs the {package} package, which is not installed: "
                    f"{install_hint(extra)}"
                )


# ----- composing --------------------------------------------------------------------------------
def compose_checked(
    config_name: str, overrides: list[str], output_dir_key: str | None = None,
    validate: bool = True, with_hydra: bool = False,
) -> DictConfig:
    """`compose_config` for the command line: exit 2 with its one line on a mistake."""
    try:
        return compose_config(config_name, overrides, output_dir_key, validate, with_hydra)
    except ConfigError as error:
        fail(str(error))


def compose_config(
    config_name: str, overrides: list[str], output_dir_key: str | None = None,
    validate: bool = True, with_hydra: bool = False,
) -> DictConfig:
    """Compose and validate (types, unknown keys, values, and the output dir at `output_dir_key`,
    e.g. hydra.run.dir, when given). Returns the composed config, with its `hydra` node when
    `output_dir_key` is given or `with_hydra`. `validate=False` leaves out `validate_train`'s
    checks, which load the algorithm's code and reach the remote loggers.

    Raises:
        ConfigError: a mistake, in the one line the command line prints (CheckpointError for
            a checkpoint of `resume=` that cannot be continued).
    """
    with_hydra = with_hydra or output_dir_key is not None
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        raise ConfigError(parse_error(overrides, error)) from None
    try:
        check_group_values(parsed)
        import_from_overrides(overrides)  # Hydra picks the env node from what they register
        if config_name == "train" and resume_override(parsed) is not None:
            cfg = compose_resume(parsed, with_hydra)
        else:
            cfg = hydra_compose(config_name, overrides, with_hydra)
            check_added_keys(cfg, config_name, parsed)
            if config_name == "train":
                cfg = _with_cnn_for_images(cfg, overrides, with_hydra)
        typed = OmegaConf.to_object(job_node(cfg))
        if config_name == "train" and validate:
            validate_train(typed)
    except ConfigError as error:
        named = naming_user_file(str(error), overrides) if config_name == "train" else str(error)
        if named == str(error):
            raise
        raise ConfigError(named) from None
    except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException) as error:
        raise ConfigError(explain(error, config_name, overrides)) from None
    except yaml.MarkedYAMLError as error:  # a config file that is not YAML (a user's, mostly)
        mark = error.problem_mark or error.context_mark
        where = f"{mark.name} line {mark.line + 1}" if mark else "a config file"
        raise ConfigError(f"invalid YAML in {where}: {error.problem or error.context}") from None
    if output_dir_key is not None:
        _check_output_dir(Path(OmegaConf.select(cfg, output_dir_key)), output_dir_key)
    return cfg


def _with_cnn_for_images(cfg: DictConfig, overrides: list[str], with_hydra: bool) -> DictConfig:
    """`cfg` recomposed with network=cnn when the env gives images and no network was chosen."""
    from rlrun.envs.factory import env_spaces, is_image

    if (
        cfg.network.name != "mlp"
        or cfg.env.family == "lm"
        or any(key_of(o) == "network" for o in overrides)
    ):
        return cfg
    typed_env = OmegaConf.to_object(cfg.env)
    obs_space, _ = env_spaces(typed_env)
    if not is_image(obs_space):
        return cfg
    return hydra_compose("train", [*overrides, "network=cnn"], with_hydra)


def _check_output_dir(target: Path, key: str) -> None:
    """Raise ConfigError when the run (or sweep) dir `target`, set by `key`, cannot be created
    or written."""
    target = target.expanduser().absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if existing == target and existing.is_dir() and not writable(existing):
        use = ("the same command with hydra.sweep.dir=<new dir>" if key == "hydra.sweep.dir"
               else "rlrun resume=<new dir>")
        raise ConfigError(
            f"the output dir {target} exists but is not writable; {write_fix(target, use)}"
        )
    if not existing.is_dir() or not writable(existing):
        problem = "is not a directory" if not existing.is_dir() else "is not writable"
        raise ConfigError(
            f"cannot create the output dir {target}: {existing} {problem}; set {key}=<writable dir>"
        )


# ----- resuming ---------------------------------------------------------------------------------
def resume_override(parsed: list[Override]) -> str | None:
    """The path of `resume.path=<path>` among the overrides, or None."""
    for override in parsed:
        if override.get_key_element() == "resume.path" and override.value() not in (None, "null"):
            if override.is_sweep_override():
                raise ConfigError(
                    "resume= continues one run; to continue a sweep, re-run its command "
                    "with hydra.sweep.dir=<its sweep dir>"
                )
            return str(override.value())
    return None


def merge_overrides(first: list[str], then: list[str]) -> list[str]:
    """`first` with each override of `then` replacing the one of the same key (or appended)."""
    keys = {key_of(line): line for line in first}
    for line in then:
        keys.pop(key_of(line), None)
        keys[key_of(line)] = line
    return list(keys.values())


def _original_overrides(state: dict[str, Any], checkpoint: Path) -> list[str]:
    """The overrides the checkpoint's run was started with (stored in it, else its run dir's
    `.hydra/overrides.yaml`), with the checkpoint's own algo and env."""
    stored = OmegaConf.create(state["config"])
    original = state.get("overrides")
    if original is None:
        try:
            original = [
                str(line)
                for line in OmegaConf.load(run_dir_of(checkpoint) / ".hydra" / "overrides.yaml")
            ]
        except (OSError, OmegaConfBaseException, TypeError):
            original = []
    skipped = ("resume.path", "hparams_search")
    kept = [
        line
        for line in original
        if key_of(line) not in skipped and not key_of(line).startswith("hydra")
    ]
    return merge_overrides(kept, [f"algo={state['algo']}", f"env={stored.env.id}"])


def compose_resume(parsed: list[Override], with_hydra: bool) -> DictConfig:
    """The config of `resume=<path>`: the checkpoint's stored config, with the keys typed on this
    command line (the leaves they change relative to the run's own overrides) on top.

    With `with_hydra`, the `hydra` node (run dir: the checkpoint's) is included and its task
    overrides are the run's own merged with the typed ones.
    """
    path = resume_override(parsed)
    checkpoint = resolve_checkpoint(path)
    state = read_checkpoint(checkpoint)  # kept for the run it starts (read once)
    check_python_env(checkpoint, state, "continue it from Python, "
                     "rlrun.train(resume='{run}', env={env})")
    env = OmegaConf.create(state["config"]).env
    imports = [str(name) for name in env.get("imports") or []]
    load(env.id, imports, env.get("entry_point"))  # before Hydra picks its env node
    share(env.id, imports, env.get("entry_point"))
    if state["algo"] not in algo_schemas():
        raise CheckpointError(f"{checkpoint} was written by algo '{state['algo']}', which this rlrun "
                              "does not have (an algorithm of another package: install that package)")
    original = _original_overrides(state, checkpoint)
    typed = [o.input_line for o in parsed if o.get_key_element() != "resume.path"]
    resume_line = next(o.input_line for o in parsed if o.get_key_element() == "resume.path")
    merged = merge_overrides(original, typed)
    gone = use_recorded(state.get("config_dirs") or [])  # the user's config dirs of the run
    try:
        full = hydra_compose("train", [*merged, resume_line], with_hydra)
    except MissingConfigException as error:
        if not gone:
            raise
        dirs = ", ".join(entry.removeprefix("file://") for entry in gone)
        missing = re.search(r"Could not find '(.+?)'", str(error))
        raise ConfigError(
            f"{checkpoint} was composed with the config dir {dirs}, which is gone "
            f"({missing.group(1) if missing else 'a file'}.yaml is not found); "
            "add --config-dir <its new place>"
        ) from None
    check_added_keys(full, "train", parsed)
    check_algo(checkpoint, state, full.algo.name)
    base = job_node(hydra_compose("train", [*original, resume_line]))
    stored = OmegaConf.to_container(OmegaConf.create(state["config"]))
    for key in ("resume", "hparams_search"):
        stored.pop(key, None)
    try:
        restored = OmegaConf.merge(base, known_part(stored, base))
    except OmegaConfBaseException as error:
        raise CheckpointError(
            f"{checkpoint} holds a config this rlrun cannot read ({str(error).splitlines()[0]}); "
            "resume it with the rlrun version that wrote it, or train in a new run dir"
        ) from None
    full_job = job_node(full)
    old, new = (flatten(OmegaConf.to_container(c, resolve=False)) for c in (base, full_job))
    with open_dict(restored):
        for key in sorted(new):  # the leaves the typed keys change
            if key not in old or old[key] != new[key]:
                OmegaConf.update(restored, key, OmegaConf.select(full_job, key), merge=False)
        restored.resume = full_job.resume
        restored.hparams_search = None  # resume= continues one run (a search's seed run included)
    if not with_hydra:
        return restored
    with read_write(full), open_dict(full):
        for key in restored:
            full[key] = restored[key]
        full.hydra.overrides.task = [
            line for line in merged if not key_of(line).startswith("hydra")
        ]
    return full
