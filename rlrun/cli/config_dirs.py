"""The user's config dirs: groups and files of their own beside the shipped ones in `rlrun/conf/`.

Three ways put a dir on the config search path, in this order: `--config-dir DIR` (or `-cd DIR`),
`hydra.searchpath=[file://DIR, pkg://module/path]` on the command line, and the environment
variable RLRUN_CONFIG_PATH (dirs separated by `os.pathsep`: a team's shared configs). All come
before the shipped configs, so a user's file of a shipped file's name is the one composed. Hydra
itself would put them after its primary config dir; `UserConfigSearchPath` puts them before it,
in the compositions that check a command line and in Hydra's own (a sweep's jobs, whose worker
processes receive the search path with their job). A run keeps the entries it was composed with
(`.hydra/hydra.yaml` and its checkpoints), so that `resume=` finds the same files again.
`search_dirs`, `group_options` and `config_file` look along this path as Hydra does, and
`hydra_compose` composes a config with it.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import DictConfig

from rlrun.config import ConfigError

CONF_DIR = str(Path(str(importlib.resources.files("rlrun"))).resolve() / "conf")
"""rlrun's own config dir (`rlrun/conf/`, package data)."""
ENV_VAR = "RLRUN_CONFIG_PATH"
PROVIDER = "rlrun user config"
"""The provider name of the user's entries on Hydra's search path (in `hydra.runtime.config_sources`)."""
_CONFIG_DIR_FLAGS = ("--config-dir", "-cd")

_command_line: list[str] = []
"""Search path entries of this command line (`--config-dir`, `hydra.searchpath`)."""
_recorded: list[str] = []
"""Search path entries the run being resumed was composed with."""


def _entry(text: str) -> str:
    """A dir or a search path entry as an entry whose file path is absolute."""
    scheme, sep, path = text.partition("://")
    if sep and scheme != "file":
        return text
    return f"file://{Path(path if sep else text).expanduser().resolve()}"


def entry_dir(entry: str) -> Path | None:
    """The dir a search path entry (`file://DIR`, `pkg://module/path`) names; None for another
    scheme or a module that is not installed."""
    scheme, _, path = entry.partition("://")
    if scheme == "file":
        return Path(path)
    if scheme == "pkg":
        module, _, sub = path.replace("/", ".").partition(".")
        try:
            root = importlib.resources.files(module)
        except ModuleNotFoundError:
            return None
        return Path(str(root.joinpath(*sub.split(".")) if sub else root))
    return None


def entries() -> list[str]:
    """The user's search path entries, first wins: this command line's, a resumed run's, then
    those of RLRUN_CONFIG_PATH."""
    shared = [_entry(d) for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d]
    return list(dict.fromkeys([*_command_line, *_recorded, *shared]))


def user_dirs() -> list[Path]:
    """The existing dirs of `entries()`, first wins."""
    dirs = (entry_dir(entry) for entry in entries())
    return [d for d in dirs if d is not None and d.is_dir()]


def take_from_argv(argv: list[str]) -> list[str]:
    """`argv` without its `--config-dir DIR` flags; their dirs and the entries of a
    `hydra.searchpath=[...]` override go first on the search path. Raises ConfigError for a dir
    that does not exist."""
    kept, dirs, searchpath = [], [], []
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag in _CONFIG_DIR_FLAGS:
            value = value if eq else next(args, "")
            if not value:
                raise ConfigError(f"{flag} needs a dir: {flag} DIR")
            dirs.append(value)
            continue
        if arg.lstrip("+").startswith("hydra.searchpath="):
            searchpath += _searchpath(arg)
        kept.append(arg)
    given = [
        *((d, "--config-dir") for d in dirs),
        *(("" if d.startswith("pkg://") else d.removeprefix("file://"), "hydra.searchpath")
          for d in searchpath),
        *((d, ENV_VAR) for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d),
    ]
    for name, where in given:
        if name and not Path(name).expanduser().is_dir():
            fix = (f"set it to existing dirs separated by '{os.pathsep}'" if where == ENV_VAR
                   else "give a dir that holds your config groups (experiment/, preset/, ...)")
            raise ConfigError(f"{where} names {name}, which is not a directory; {fix}")
    _command_line[:] = [_entry(d) for d in [*dirs, *searchpath]]
    return kept


def _searchpath(override: str) -> list[str]:
    """The entries of a `hydra.searchpath=[...]` override."""
    try:
        (parsed,) = OverridesParser.create().parse_overrides([override])
    except OverrideParseException:
        return []  # the command line's check says why
    value = parsed.value()
    return [str(v) for v in value] if isinstance(value, list) else []


def use_recorded(recorded: Iterable[str]) -> list[str]:
    """Put the entries a run was composed with on the search path (after this command line's);
    returns those whose dir is gone."""
    _recorded[:] = list(recorded)
    return [e for e in _recorded if (d := entry_dir(e)) is None or not d.is_dir()]


class UserConfigSearchPath(SearchPathPlugin):
    """Puts the user's config dirs before the primary (shipped) config dir."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for entry in entries():
            search_path.prepend(provider=PROVIDER, path=entry, anchor=SearchPathQuery(provider="main"))


@dataclass(frozen=True)
class UsedFile:
    """A config file a composition chose."""

    group: str
    """Its group (`preset`, `preset/env`, `experiment`, `network`, ...)."""
    path: Path
    """Where it is."""
    yours: bool
    """Whether it is in one of the user's dirs."""
    replaces: bool
    """Whether a shipped file of that name exists (and is not used)."""

    def __str__(self) -> str:
        name = f"{self.group}/{self.path.name}"
        return f"{self.path} (instead of rlrun's {name})" if self.replaces else str(self.path)


def used_files(
    choices: Mapping[str, str | None], sources: Iterable[Mapping[str, str]], shipped: Path
) -> list[UsedFile]:
    """The files of the group choices `choices` (Hydra's `runtime.choices`), found along the
    search path `sources` (`runtime.config_sources`: scheme, path, provider) as Hydra finds them;
    choices no file serves (an env from Gymnasium's registry, an absent optional preset) are
    left out."""
    dirs = []
    for source in sources:
        directory = entry_dir(f"{source['schema']}://{source['path']}")
        if directory is not None:
            dirs.append((directory, source["provider"] == PROVIDER and directory != shipped))
    used = []
    for group, option in choices.items():
        if option is None or group.startswith("hydra/"):
            continue
        relative = Path(group) / f"{option}.yaml"
        found = next(((d, yours) for d, yours in dirs if (d / relative).is_file()), None)
        if found is not None:
            directory, yours = found
            replaces = yours and (shipped / relative).is_file()
            used.append(UsedFile(group, directory / relative, yours, replaces))
    return used


def search_dirs() -> list[Path]:
    """The config dirs, first wins: the user's (`user_dirs`), then the shipped one (`CONF_DIR`)."""
    return [*user_dirs(), Path(CONF_DIR)]


def is_group(key: str) -> bool:
    """Whether `key` is a config group (`env`, or a dir of a config dir: `algo`, `preset/env`)."""
    return key == "env" or any((directory / key).is_dir() for directory in search_dirs())


def group_options(group: str) -> list[str]:
    """The options of a config group in every config dir (the user's and the shipped)."""
    return sorted({path.stem for d in search_dirs() for path in (d / group).glob("*.yaml")})


def config_file(name: str) -> Path | None:
    """The file Hydra composes for the config `name` (`experiment/short`), or None."""
    return next((p for d in search_dirs() if (p := d / f"{name}.yaml").is_file()), None)


def hydra_compose(config_name: str, overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """The config `config_name` with `overrides`, composed by Hydra from the config dirs (the
    user's come first through `UserConfigSearchPath`); with its `hydra` node when `with_hydra`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=config_name):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=with_hydra)
