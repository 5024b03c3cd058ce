"""Algorithm registry: `algo=<name>` -> its config schema, training loop and policy builder.

Every module in `rlrun/algos/` that defines `SPEC = AlgoSpec(...)` is registered, and so is every
algorithm an installed package declares in the entry point group `rlrun.algorithms`
(`<name> = "<module>:SPEC"`, or the module alone when it defines `SPEC`). A package's config
files (`algo/<name>.yaml`, `preset/<name>_<family>.yaml`) live in a `conf/` folder beside that
module, which `AlgoPackagesSearchPath` puts on Hydra's search path. A package that cannot be
registered is named in one line on stderr and left out; the other algorithms work.

Composing a config needs only the config dataclasses (`schemas`): rlrun's own come from
`rlrun.algos.configs`, which imports no torch, so that `rlrun --help` and `--cfg job` load no
training code.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from rlrun.algos.spec import AlgoSpec

ENTRY_POINT_GROUP = "rlrun.algorithms"
"""The entry point group in which a package declares its algorithms."""


@dataclass(frozen=True)
class Registry:
    specs: dict[str, AlgoSpec]
    """Every algorithm, rlrun's own and those of other packages, by name."""
    config_dirs: dict[str, Path]
    """Another package's algorithm -> the `conf/` folder that holds its yaml files."""
    broken: dict[str, str]
    """Entry point name -> the line saying why its package's algorithm is left out."""


class PluginError(Exception):
    """An entry point of `rlrun.algorithms` that cannot be registered (the message says why)."""


def _shipped_configs() -> dict[str, type]:
    """rlrun's own algorithms' config dataclasses by name: the classes of `rlrun.algos.configs`
    that set their `name` (the family bases leave it to the algorithms)."""
    from rlrun.algos import configs

    return {value.name: value for value in vars(configs).values()
            if isinstance(value, type) and value.__module__.startswith(f"{configs.__name__}.")
            and isinstance(value.__dict__.get("name"), str)}


def _shipped() -> dict[str, AlgoSpec]:
    import rlrun.algos

    specs = {}
    for module_info in pkgutil.iter_modules(rlrun.algos.__path__):
        module = importlib.import_module(f"rlrun.algos.{module_info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, AlgoSpec):
            specs[spec.name] = spec
    return specs


def _plugin(
    entry_point: importlib.metadata.EntryPoint, taken: dict[str, str]
) -> tuple[AlgoSpec, Path]:
    """The spec an entry point names and its package's `conf/` folder; PluginError says why not.
    `taken`: the names already registered -> who registered them."""
    from rlrun.config import AlgoConfig

    try:
        loaded = entry_point.load()
    except Exception as error:  # noqa: BLE001 - a package may raise anything; one line names it
        detail = f"{type(error).__name__}: {str(error).strip()}".splitlines()[0].rstrip(": ")
        raise PluginError(f"{entry_point.value} cannot be loaded ({detail})") from None
    spec = getattr(loaded, "SPEC", None) if isinstance(loaded, ModuleType) else loaded
    if not isinstance(spec, AlgoSpec):
        raise PluginError(
            f"{entry_point.value} is not an AlgoSpec nor a module with SPEC = AlgoSpec(...)"
        )
    if spec.name != entry_point.name:
        raise PluginError(f"the entry point is named '{entry_point.name}' but its AlgoSpec "
                          f"'{spec.name}'; give both the same name")
    if spec.name in taken:
        raise PluginError(f"algo={spec.name} is taken by {taken[spec.name]}; rename it")
    config = spec.config
    if not (dataclasses.is_dataclass(config) and issubclass(config, AlgoConfig)
            and config.name == spec.name):
        raise PluginError(f"its config must be a dataclass subclassing AlgoConfig with "
                          f"name: str = '{spec.name}'")
    conf = Path(sys.modules[entry_point.module].__file__).parent / "conf"
    if not (conf / "algo" / f"{spec.name}.yaml").is_file():
        raise PluginError(f"it ships no {conf / 'algo' / spec.name}.yaml (add it, and "
                          "conf/**/*.yaml to the package data)")
    return spec, conf


@cache
def _packages() -> Registry:
    """The algorithms of installed packages (`rlrun.algorithms` entry points), each loaded."""
    taken = {name: "rlrun's own algorithm" for name in _shipped_configs()}
    specs, config_dirs, broken = {}, {}, {}
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(entry_points, key=lambda e: e.name):
        package = entry_point.dist.name if entry_point.dist is not None else entry_point.value
        try:
            spec, config_dirs[entry_point.name] = _plugin(entry_point, taken)
        except PluginError as error:
            broken[entry_point.name] = (
                f"algorithm '{entry_point.name}' of package {package} is left out: {error}"
            )
            continue
        specs[spec.name] = spec
        taken[spec.name] = f"package {package}"
    return Registry(specs, config_dirs, broken)


@cache
def registry() -> Registry:
    """rlrun's algorithms and those of installed packages (`rlrun.algorithms` entry points)."""
    packages = _packages()
    specs = {**_shipped(), **packages.specs}
    return Registry(dict(sorted(specs.items())), packages.config_dirs, packages.broken)


_warned: set[str] = set()
"""The algorithms of packages whose line `warn_broken` printed in this process."""


def warn_broken(chosen: Iterable[str] = ()) -> None:
    """Print on stderr, once per process, the line of each package algorithm that could not be
    registered, except the `chosen` ones that no algorithm answers (their refusal is that line;
    a package's clash with a registered name is still said)."""
    refused = set(chosen) - set(registry().specs)
    for name, line in registry().broken.items():
        if name not in _warned and name not in refused:
            _warned.add(name)
            print(f"rlrun: {line}", file=sys.stderr)


def algorithms() -> dict[str, AlgoSpec]:
    """All registered algorithms by name."""
    return registry().specs


@cache
def schemas() -> dict[str, type]:
    """Every algorithm's config dataclass by name, without importing rlrun's algorithm modules
    (those of other packages are loaded: their config lives beside their loop)."""
    configs = {**_shipped_configs(), **{name: spec.config for name, spec in _packages().specs.items()}}
    return dict(sorted(configs.items()))


class AlgoPackagesSearchPath(SearchPathPlugin):
    """Appends the `conf/` folder of each algorithm from another package to Hydra's search path
    (after rlrun's own configs, which therefore win a clash of file names)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for name, directory in _packages().config_dirs.items():
            search_path.append(provider=f"rlrun.algorithms:{name}", path=f"file://{directory}")
