"""Composing and validating a command line's config before anything runs or is written.

A user mistake is one line that names the fix, never a traceback: `compose_config` raises it as
a ConfigError (which the Python API passes on), `compose_checked` prints it on stderr and exits
with code 2. Composing refuses unknown keys with the nearest known ones (`+key=` included), picks
the CNN for image observations, and, for `resume=<path>`, builds the resumed run's config from
its checkpoint with the typed keys on top.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.util
import itertools
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from rlrun.arguments import parse_error
from rlrun.callbacks import check_callbacks
from rlrun.checkpoint import CheckpointError, resolve_checkpoint, run_dir_of
from rlrun.config import ConfigError, LoggerConfig, TrainConfig
from rlrun.config_dirs import use_recorded, used_files, user_dirs
from rlrun.envs.config_source import similar_env_ids
from rlrun.envs.imports import UNKNOWN_ENV_HINT, import_from_overrides, load, share
from rlrun.extras import install_hint, require
from rlrun.flat import flatten
from rlrun.registry import AlgoSpec, algorithms, registry
from rlrun.registry import schemas as algo_schemas
from rlrun.resume import check_algo, check_python_env, known_part, read_checkpoint
from rlrun.writable import writable, write_fix

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
USAGE_EXIT = 2
CXX_COMPILERS = ("g++", "c++", "clang++")
LOGGER_EXTRAS = ("tensorboard", "wandb", "mlflow")
"""The loggers that need a package of their own: each key `logger.<name>`, its module and its
extra share that name."""
"""C++ compilers torch.compile's inductor can build its kernels with."""

# Hydra command-line flags after which nothing is checked (they print and exit).
_NO_CHECK_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--shell-completion",
    "-sc",
    "--info",
    "-i",
}
_HYDRA_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--info",
    "-i",
    "--experimental-rerun",
}
# The Hydra plugin package (the [sweep] extra) that each launcher or sweeper choice needs.
_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweep"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "sweep"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "rlrun_optuna": ("optuna", "optuna", "sweep"),
}
"""A launcher or sweeper choice -> the module it needs, its package and the rlrun extra."""

HABITS = {
    "lr": "optimizer.lr",
    "learning_rate": "optimizer.lr",
    "n_steps": "algo.num_steps",
    "n_epochs": "algo.num_epochs",
    "update_epochs": "algo.num_epochs",
    "n_envs": "env.num_envs",
    "num_envs": "env.num_envs",
    "clip_range": "algo.clip_coef",
    "net_arch": "network.hidden_sizes",
    "hidden_sizes": "network.hidden_sizes",
    "activation_fn": "network.activation",
    "train_freq": "algo.train_every",
    "target_update_interval": "algo.target_update_every",
    "exploration_final_eps": "algo.eps_end",
    "exploration_initial_eps": "algo.eps_start",
    "target_policy_noise": "algo.policy_noise",
    "target_noise_clip": "algo.noise_clip",
    "eval_freq": "eval.every_steps",
    "n_eval_episodes": "eval.episodes",
    "save_freq": "checkpoint.every_steps",
    "n_timesteps": "total_timesteps",
    "total_timesteps": "total_timesteps",
    "seed": "seed",
    "device": "device",
    "norm_obs": "env.normalize_obs",
    "norm_reward": "env.normalize_reward",
    "normalize": "env.normalize_obs",
    "anneal_lr": "optimizer.schedule",
    "torch_deterministic": "deterministic",
    "cuda": "device",
    "env_id": "env.id",
    "episodes": "eval.episodes",
    "ent_coef": "algo.alpha",
    "render": "eval.video",
}
"""Key names of other RL libraries (SB3, RL Zoo, CleanRL) and the rlrun key that does their job."""


def fail(message: str) -> None:
    print(f"rlrun: {message}", file=sys.stderr)
    raise SystemExit(USAGE_EXIT)


def _close(word: str, options: list[str]) -> str:
    matches = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def _key_of(override: str) -> str:
    return re.sub(r"^(\+{1,2}|~)", "", override.partition("=")[0])


def split_env_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the `env=` and `env.*` overrides, the others): rlrun-eval applies the first to the
    checkpoint's env (`rlrun.policy_io.env_variant`)."""
    env = [o for o in overrides if _key_of(o) == "env" or _key_of(o).startswith("env.")]
    return env, [o for o in overrides if o not in env]


def search_dirs() -> list[Path]:
    """The config dirs, first wins: the user's (`rlrun.config_dirs`), then the shipped one."""
    return [*user_dirs(), Path(CONF_DIR)]


def is_group(key: str) -> bool:
    return key == "env" or any((directory / key).is_dir() for directory in search_dirs())


def group_options(group: str) -> list[str]:
    """The options of a config group in every config dir (the user's and the shipped)."""
    return sorted({path.stem for d in search_dirs() for path in (d / group).glob("*.yaml")})


def config_file(name: str) -> Path | None:
    """The file Hydra composes for the config `name` (`experiment/short`), or None."""
    return next((p for d in search_dirs() if (p := d / f"{name}.yaml").is_file()), None)


def _compose(config_name: str, overrides: list[str], with_hydra: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=config_name):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=with_hydra)


def job_node(cfg: DictConfig) -> DictConfig:
    """`cfg` without its `hydra` node."""
    if "hydra" not in cfg:
        return cfg
    job = copy.deepcopy(cfg)
    with read_write(job), open_dict(job):
        del job["hydra"]
    return job


# ----- unknown keys ---------------------------------------------------------------------------
def _group_config(config_name: str, overrides: list[str]) -> DictConfig:
    """The config these overrides' group choices compose (the defaults if a choice is bad)."""
    groups = [o for o in overrides if is_group(_key_of(o))]
    try:
        return _compose(config_name, groups)
    except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException):
        return _compose(config_name, [])


def known_keys(cfg: DictConfig) -> list[str]:
    """Every key (leaves and sections) of `cfg`."""
    leaves = flatten(OmegaConf.to_container(cfg, resolve=False))
    sections = {
        ".".join(key.split(".")[:i]) for key in leaves for i in range(1, key.count(".") + 1)
    }
    return sorted(leaves.keys() | sections)


def unknown_key_message(key: str, config_name: str, overrides: list[str]) -> str:
    """`unknown key 'k'; did you mean ...?` with the nearest keys (and other libraries' names)."""
    cfg = _group_config(config_name, overrides)
    owners = _owners(key)
    if owners:
        group = key.split(".")[0]
        return f"unknown key '{key}' for {group}={cfg[group].name}: it is a key of {group}={owners}"
    known = known_keys(cfg)
    listing = (
        "`rlrun --cfg job` lists every key"
        if config_name == "train"
        else "`rlrun-eval --help` lists its keys"
    )
    section, _, name = key.rpartition(".")
    siblings = [k.rsplit(".", 1)[-1] for k in known if k.rpartition(".")[0] == section]
    habits = [h for h, target in HABITS.items() if target != key and target.split("=")[0] in known]
    matches: list[str] = []
    for close in difflib.get_close_matches(name, [*siblings, *habits], n=3, cutoff=0.6):
        if close in siblings and close != name:
            matches.append(f"{section}.{close}" if section else close)
        elif close in habits:
            matches.append(
                HABITS[close] + ("=linear" if HABITS[close] == "optimizer.schedule" else "")
            )
    leaves = [k for k in known if not key.startswith(k + ".")]
    matches += difflib.get_close_matches(key, leaves, n=3, cutoff=0.75)
    unique = list(dict.fromkeys(m for m in matches if m != key))[:3]
    if not unique:
        return f"unknown key '{key}' ({listing})"
    return f"unknown key '{key}'; did you mean {', '.join(unique)}? ({listing})"


def _owners(key: str) -> str:
    """The `algo=` or `network=` choices whose schema has `key` (e.g. `dqn, sac`), or ''."""
    from rlrun.config import NETWORK_SCHEMAS

    group, _, name = key.partition(".")
    schemas = {
        "algo": algo_schemas(),
        "network": NETWORK_SCHEMAS,
    }
    if group not in schemas or "." in name:
        return ""
    names = [
        option
        for option, schema in schemas[group].items()
        if name in {f.name for f in dataclasses.fields(schema)}
    ]
    return ", ".join(names)


def _check_added_keys(cfg: DictConfig, config_name: str, overrides: list[Override]) -> None:
    """Refuse `+key=value` for keys the schema does not have (free-form dicts aside: env.kwargs)."""
    for override in overrides:
        key = override.key_or_group
        if (
            not (override.is_add() or override.is_force_add())
            or key.startswith("hydra")
            or is_group(key)
        ):
            continue
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        schema = OmegaConf.get_type(parent) if isinstance(parent, DictConfig) else None
        if dataclasses.is_dataclass(schema) and name not in {
            f.name for f in dataclasses.fields(schema)
        }:
            raise ConfigError(
                unknown_key_message(key, config_name, [o.input_line for o in overrides])
            )


def explain(error: Exception, config_name: str, overrides: list[str]) -> str:
    """One line for a composition or validation error."""
    text = str(error)
    source = re.match(r"In '([\w/.\-]+)': (?:\w+ raised while composing config:\n)?", text)
    path = config_file(source.group(1)) if source and source.group(1) != config_name else None
    if path is not None:  # a mistake inside a group's file (a user's experiment, preset, ...)
        detail = explain(type(error)(text[source.end() :]), config_name, overrides)
        key = re.search(r"full_key: (\S+)", text)
        if key and key.group(1) not in detail:
            detail = f"{key.group(1)}: {detail}"
        return f"in {path}: {detail}"
    missing = re.search(r"Could not find '([\w/]+?)/(.+?)'", text)
    if isinstance(error, MissingConfigException) and missing:
        group, option = missing.groups()
        if group == "env":
            close = similar_env_ids(option)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            return _misspelt_import_key(overrides) or f"unknown env '{option}'{hint}{_env_hint(option)}"
        if group == "algo":
            if option in registry().broken:
                return registry().broken[option]
            names = list(algo_schemas())
            return (
                f"unknown algo '{option}'{_close(option, names)} (choose from {', '.join(names)})"
            )
        options = group_options(group)
        choices = ", ".join(options)
        close = _close(option, options)
        yours = "" if user_dirs() or close else "; or add a dir of your own with --config-dir DIR"
        return f"unknown {group} '{option}'{close} (choose from {choices}{yours})"
    unknown = re.search(r"Could not override '(.+?)'", text) or re.search(
        r"Key '(.+?)' not in", text
    )
    group_line = next((o for o in overrides if unknown and _key_of(o) == unknown.group(1)), "")
    if group_line[:1] not in ("", "+") and is_group(_key_of(group_line)):  # not in train.yaml's defaults
        return f"{_key_of(group_line)} is added with a leading +: +{group_line}"
    if unknown:
        full_key = re.search(r"full_key: (\S+)", text)
        return unknown_key_message((full_key or unknown).group(1), config_name, overrides)
    if re.search(r"missing mandatory value: checkpoint", text, flags=re.IGNORECASE):
        return (
            "rlrun-eval needs a checkpoint: "
            "rlrun-eval <run dir or checkpoint file> [eval.episodes=10 ...]"
        )
    cause = error.__cause__ or error
    merging = re.search(r"Error merging override (\S+)", text)
    detail = str(cause).strip().splitlines()[0]
    if merging:
        return _override_hint(merging.group(1), detail, config_name) or (
            f"invalid override {merging.group(1)}: {detail}")
    return detail or f"invalid {config_name} config ({type(error).__name__})"


SWEEPER_HABITS = {
    "hydra.sweeper.sampler.seed": "hydra.sweeper.sampler_seed",
    "hydra.sweeper.sampler._target_": "hydra.sweeper.sampler",
    "hydra.sweeper.pruner._target_": "hydra.sweeper.pruner",
    "hydra.sweeper.pruner.n_startup_trials": "hydra.sweeper.pruner_startup_trials",
    "hydra.sweeper.pruner.n_warmup_steps": "hydra.sweeper.pruner_warmup_steps",
}
"""Keys of hydra-optuna-sweeper and the key of rlrun's Optuna sweeper that does their job."""


def _override_hint(line: str, detail: str, config_name: str) -> str | None:
    """One line naming the fix for an override of the wrong shape, or None: a list written
    without brackets, a value given to a section, a key under a value (another sweeper's)."""
    key, _, value = line.partition("=")
    key, value = key.lstrip("+~"), value.strip("'\"")
    if key in SWEEPER_HABITS:
        return (f"{key} is a key of hydra-optuna-sweeper; rlrun's sweeper takes "
                f"{SWEEPER_HABITS[key]}={value}")
    if "Cannot merge DictConfig with ListConfig" in detail:
        return f"{key} takes a list: write {key}=[{value}] (in brackets)"
    if "is not a ListConfig" in detail:
        typed = next((arg.partition("=")[2] for arg in sys.argv[1:]
                      if arg.partition("=")[0].lstrip("+") == key), value)
        return (f"{key} takes a list: write {key}=[{typed.strip('[]')}] (in brackets; a comma "
                "outside brackets separates the values of a sweep)")
    if key == "checkpoint" and config_name == "train":
        return (f"rlrun trains and takes no checkpoint=: to evaluate {value} use `rlrun-eval "
                f"{value}`, to continue training it use `rlrun resume={value}`")
    if "is not a subclass of" in detail:
        return (f"{key} is a section, not a value: set one of its keys ({key}.<key>={value}; "
                f"`rlrun --cfg job` lists them)")
    return None


def _misspelt_import_key(overrides: list[str]) -> str | None:
    """`unknown key 'env.import'; did you mean env.imports?` when a key of `overrides` is a near
    miss of a key that imports envs (the env it names is unknown without that import)."""
    keys = ("env.imports", "env.entry_point")
    for key in map(_key_of, overrides):
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
        if close and key != close[0]:
            return f"unknown key '{key}'; did you mean {close[0]}?"
    return None


def _env_hint(env_id: str) -> str:
    if env_id.startswith("ALE/") and importlib.util.find_spec("ale_py") is None:
        return f" (Atari envs need the atari extra: {install_hint('atari')})"
    return f" ({UNKNOWN_ENV_HINT})"


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
        if arg in _NO_CHECK_FLAGS:
            check_args = False
        if arg.startswith("-"):
            skip_next = arg in _HYDRA_FLAGS_WITH_VALUE and arg not in ("--info", "-i")
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
        _check_group_values(parsed)
        import_from_overrides(overrides)  # Hydra picks the env node from what they register
        if config_name == "train" and resume_override(parsed) is not None:
            cfg = compose_resume(parsed, with_hydra)
        else:
            cfg = _compose(config_name, overrides, with_hydra)
            _check_added_keys(cfg, config_name, parsed)
            if config_name == "train":
                cfg = _with_cnn_for_images(cfg, overrides, with_hydra)
        typed = OmegaConf.to_object(job_node(cfg))
        if config_name == "train" and validate:
            validate_train(typed)
    except ConfigError as error:
        named = _naming_user_file(str(error), overrides) if config_name == "train" else str(error)
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


def _check_group_values(parsed: list[Override]) -> None:
    """Refuse a group choice that is a number, a boolean, null or empty (`optimizer=5`): a group
    takes a name (and `~group` leaves it out)."""
    for override in parsed:
        key = override.key_or_group
        value = override.value()
        if is_group(key) and value is None and not override.is_delete():
            raise ConfigError(f"{key}=null: to leave the {key} group out, write ~{key}")
        if is_group(key) and (isinstance(value, (bool, int, float)) or value == ""):
            options = group_options(key)
            listing = f" (choose from {', '.join(options)})" if options else ""
            raise ConfigError(f"{key}={value}: {key} takes the name of a config{listing}")


def _naming_user_file(message: str, overrides: list[str]) -> str:
    """`message` about `key=value` prefixed with the user's file that sets the key, when a file of
    the user's config dirs (the last applied) does and the command line does not."""
    key = re.match(r"([\w.]+)=", message)
    if key is None or key.group(1) in map(_key_of, overrides) or not user_dirs():
        return message
    try:
        runtime = _compose("train", overrides, with_hydra=True).hydra.runtime
    except (ConfigCompositionException, OmegaConfBaseException):
        return message
    files = used_files(runtime.choices, runtime.config_sources, Path(CONF_DIR))
    last_first = ("experiment", "hparams_search", "preset/env", "preset")
    files.sort(key=lambda f: last_first.index(f.group) if f.group in last_first else len(last_first))
    for used in (f for f in files if f.yours):
        text = used.path.read_text()
        is_global = re.search(r"^#\s*@package\s+_global_", text, flags=re.MULTILINE)
        prefix = "" if is_global else used.group.replace("/", ".") + "."
        relative = key.group(1).removeprefix(prefix)
        if relative == key.group(1) and prefix:
            continue  # a key of another group
        if OmegaConf.select(OmegaConf.create(text), relative) is not None:
            return f"in {used.path}: {message}"
    return message


def _with_cnn_for_images(cfg: DictConfig, overrides: list[str], with_hydra: bool) -> DictConfig:
    """`cfg` recomposed with network=cnn when the env gives images and no network was chosen."""
    from rlrun.envs.factory import env_spaces, is_image

    if (
        cfg.network.name != "mlp"
        or cfg.env.family == "lm"
        or any(_key_of(o) == "network" for o in overrides)
    ):
        return cfg
    typed_env = OmegaConf.to_object(cfg.env)
    obs_space, _ = env_spaces(typed_env)
    if not is_image(obs_space):
        return cfg
    return _compose("train", [*overrides, "network=cnn"], with_hydra)


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


def validate_train(cfg: TrainConfig) -> None:
    """Checks that span groups: the env exists and builds, and the algorithm can act in it."""
    from rlrun.envs.factory import env_spaces

    check_loggers(cfg.logger)
    check_callbacks(cfg.callbacks)
    spec = algorithms()[cfg.algo.name]
    if cfg.compile:
        check_compile(spec)
    if spec.check_task is not None:  # an in-process task (env=lm), not a Gymnasium env
        spec.check_task(cfg)
        return
    obs_space, action_space = env_spaces(cfg.env)
    if spec.check_spaces is not None:
        spec.check_spaces(obs_space, action_space, cfg.env.id)
    if spec.replay and (cfg.env.normalize_obs or cfg.env.normalize_reward):
        keys = [
            f"env.{key}=false"
            for key in ("normalize_obs", "normalize_reward")
            if getattr(cfg.env, key)
        ]
        raise ConfigError(
            f"algo={spec.name} learns from a replay buffer, which would hold transitions "
            f"normalised by statistics that keep moving; set {' '.join(keys)} (its presets do)"
        )


def check_loggers(cfg: LoggerConfig) -> None:
    """Each logger that is on has its package (an extra) installed; with `on_failure=fail`, the
    remote ones (wandb online, an MLflow server) answer within seconds."""
    from rlrun.logger_check import unreachable

    for name in LOGGER_EXTRAS:
        if getattr(cfg, name):
            require(name, f"logger.{name}=true")
    if cfg.on_failure == "fail":
        for problem in unreachable(cfg).values():
            raise ConfigError(f"{problem}; or train without it: logger.on_failure=continue")


def check_compile(spec: AlgoSpec) -> None:
    """`compile=true` needs an algorithm that uses it and a C++ compiler for torch.compile."""
    if not spec.compiles:
        users = ", ".join(name for name, other in algorithms().items() if other.compiles)
        raise ConfigError(
            f"compile=true applies to algo={users}; algo={spec.name} has no minibatch loss to "
            "compile: drop compile=true"
        )
    if not any(shutil.which(compiler) for compiler in CXX_COMPILERS):
        raise ConfigError(
            "compile=true needs a C++ compiler (g++ or clang++) on the PATH for torch.compile: "
            "install one (e.g. apt install g++) or drop compile=true"
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
    keys = {_key_of(line): line for line in first}
    for line in then:
        keys.pop(_key_of(line), None)
        keys[_key_of(line)] = line
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
        if _key_of(line) not in skipped and not _key_of(line).startswith("hydra")
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
        full = _compose("train", [*merged, resume_line], with_hydra)
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
    _check_added_keys(full, "train", parsed)
    check_algo(checkpoint, state, full.algo.name)
    base = job_node(_compose("train", [*original, resume_line]))
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
            line for line in merged if not _key_of(line).startswith("hydra")
        ]
    return full
