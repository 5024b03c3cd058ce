"""One line for each kind of mistake in a command line's config, naming the fix: an unknown key
with the nearest known ones (and the rlrun key for another library's name, `lr` ->
`optimizer.lr`), a group choice that is not a name, an unknown group option, a value in a file of
the user's config dirs, a composition error of Hydra or OmegaConf."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import re
import sys
from pathlib import Path

from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlrun.cli.arguments import key_of
from rlrun.cli.config_dirs import (
    CONF_DIR,
    config_file,
    group_options,
    hydra_compose,
    is_group,
    used_files,
    user_dirs,
)
from rlrun.config import NETWORK_SCHEMAS, ConfigError
from rlrun.config.flat import flatten
from rlrun.envs.config_source import similar_env_ids
from rlrun.envs.imports import UNKNOWN_ENV_HINT
from rlrun.extras import install_hint
from rlrun.registry import registry
from rlrun.registry import schemas as algo_schemas

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


SWEEPER_HABITS = {
    "hydra.sweeper.sampler.seed": "hydra.sweeper.sampler_seed",
    "hydra.sweeper.sampler._target_": "hydra.sweeper.sampler",
    "hydra.sweeper.pruner._target_": "hydra.sweeper.pruner",
    "hydra.sweeper.pruner.n_startup_trials": "hydra.sweeper.pruner_startup_trials",
    "hydra.sweeper.pruner.n_warmup_steps": "hydra.sweeper.pruner_warmup_steps",
}
"""Keys of hydra-optuna-sweeper and the key of rlrun's Optuna sweeper that does their job."""


def _close(word: str, options: list[str]) -> str:
    matches = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def _group_config(config_name: str, overrides: list[str]) -> DictConfig:
    """The config these overrides' group choices compose (the defaults if a choice is bad)."""
    groups = [o for o in overrides if is_group(key_of(o))]
    try:
        return hydra_compose(config_name, groups)
    except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException):
        return hydra_compose(config_name, [])


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


def check_added_keys(cfg: DictConfig, config_name: str, overrides: list[Override]) -> None:
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


def check_group_values(parsed: list[Override]) -> None:
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


def naming_user_file(message: str, overrides: list[str]) -> str:
    """`message` about `key=value` prefixed with the user's file that sets the key, when a file of
    the user's config dirs (the last applied) does and the command line does not."""
    key = re.match(r"([\w.]+)=", message)
    if key is None or key.group(1) in map(key_of, overrides) or not user_dirs():
        return message
    try:
        runtime = hydra_compose("train", overrides, with_hydra=True).hydra.runtime
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
    group_line = next((o for o in overrides if unknown and key_of(o) == unknown.group(1)), "")
    if group_line[:1] not in ("", "+") and is_group(key_of(group_line)):  # not in train.yaml's defaults
        return f"{key_of(group_line)} is added with a leading +: +{group_line}"
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
    for key in map(key_of, overrides):
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
        if close and key != close[0]:
            return f"unknown key '{key}'; did you mean {close[0]}?"
    return None


def _env_hint(env_id: str) -> str:
    if env_id.startswith("ALE/") and importlib.util.find_spec("ale_py") is None:
        return f" (Atari envs need the atari extra: {install_hint('atari')})"
    return f" ({UNKNOWN_ENV_HINT})"
