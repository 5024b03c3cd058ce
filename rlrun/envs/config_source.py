"""A Hydra config source that builds `env/<id>` nodes from Gymnasium's registry.

Shipped yaml files under `conf/env/` take precedence; this source answers for every other
registered id, so `env=<any registered id>` works without a yaml file, and for
`env=<module>:<id>`, whose module it imports. A search-path plugin puts it on Hydra's search
path, so a user's own `hydra.searchpath=[...]` keeps it. In a sweep worker it first imports the
env modules the main process shared (`rlrun.envs.imports.share`).
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from rlrun.config import ConfigError
from rlrun.envs.imports import env_module, import_module, load_shared, registry_id

GROUP = "env"
SEARCH_PATH = "rlrun-gym://envs"

_FAMILY_BY_ENTRY_POINT = {
    "gymnasium.envs.classic_control": "classic",
    "gymnasium.envs.mujoco": "mujoco",
    "gymnasium.envs.box2d": "box2d",
    "ale_py": "atari",
    "gymnasium_robotics": "mujoco",  # MuJoCo continuous control: Fetch, Adroit, hands, mazes
}
_FAMILY_BY_ID_PREFIX = {
    # The DeepMind Control Suite through Shimmy (whose registration module also registers other
    # suites): MuJoCo continuous control, which CleanRL's benchmark runs with its MuJoCo settings.
    "dm_control/": "mujoco",
}


def registered_env_ids() -> list[str]:
    """All environment ids registered in Gymnasium (after importing known plugins and the env
    modules shared with this process)."""
    import gymnasium as gym

    load_shared()
    try:  # Atari ids register on import when the [atari] extra is installed.
        import ale_py

        gym.register_envs(ale_py)
    except ImportError:
        pass
    return sorted(gym.registry.keys())


def _implementing_module(env_id: str) -> str:
    """The module that implements a registered id (`<module>:<id>` too)."""
    import gymnasium as gym

    entry_point = gym.registry[registry_id(env_id)].entry_point
    if isinstance(entry_point, str):  # "<module>:<name>"
        return entry_point.partition(":")[0]
    return getattr(entry_point, "func", entry_point).__module__  # a functools.partial: its function's


def similar_env_ids(env_id: str) -> list[str]:
    """Registered ids close to `env_id`; those of the module of a `<module>:<id>` with that
    prefix."""
    import difflib

    module = env_module(env_id)
    close = difflib.get_close_matches(registry_id(env_id), registered_env_ids(), n=3, cutoff=0.5)
    return [
        f"{module}:{match}"
        if module and _implementing_module(match).split(".")[0] == module.split(".")[0]
        else match
        for match in close
    ]


def env_family(env_id: str) -> str:
    """Preset family of a registered id (`<module>:<id>` too), from the module that implements
    it (or its id's prefix); `other` for modules the maps do not know."""
    for prefix, family in _FAMILY_BY_ID_PREFIX.items():
        if registry_id(env_id).startswith(prefix):
            return family
    module = _implementing_module(env_id)
    for prefix, family in _FAMILY_BY_ENTRY_POINT.items():
        if module.startswith(prefix):
            return family
    return "other"


class GymRegistryConfigSource(ConfigSource):
    """Serves `env/<id>.yaml` for every id in Gymnasium's registry."""

    @staticmethod
    def scheme() -> str:
        return "rlrun-gym"

    def _env_id(self, config_path: str) -> str | None:
        if not config_path.startswith(GROUP + "/"):
            return None
        env_id = config_path[len(GROUP) + 1 :].removesuffix(".yaml")
        return env_id if self._registered(env_id) else None

    @staticmethod
    def _registered(env_id: str) -> bool:
        """Whether `env_id` is registered, after importing the module of `<module>:<id>`."""
        module = env_module(env_id)
        if module is not None:
            try:
                import_module(module, f"env={env_id}")
            except ConfigError:  # the command line's check (import_from_overrides) says why
                return False
        return registry_id(env_id) in registered_env_ids()

    def load_config(self, config_path: str) -> ConfigResult:
        env_id = self._env_id(config_path)
        if env_id is None:
            raise ConfigLoadError(f"Config not found: {config_path}")
        node = {"defaults": [{"/family": env_family(env_id)}], "env": {"id": env_id}}
        return ConfigResult(
            config=OmegaConf.create(node),
            path=f"{self.scheme()}://{self.path}",
            provider=self.provider,
            header={"package": "_global_"},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        if config_path == GROUP:
            return True
        if not config_path.startswith(GROUP + "/"):
            return False
        prefix = config_path[len(GROUP) + 1 :] + "/"
        return any(env_id.startswith(prefix) for env_id in registered_env_ids())

    def is_config(self, config_path: str) -> bool:
        return self._env_id(config_path) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path != GROUP and not config_path.startswith(GROUP + "/"):
            return []
        prefix = "" if config_path == GROUP else config_path[len(GROUP) + 1 :] + "/"
        groups, configs = set(), set()
        for env_id in registered_env_ids():
            if env_id.startswith(prefix):
                head, nested, _ = env_id[len(prefix) :].partition("/")
                (groups if nested else configs).add(head)
        if results_filter == ObjectType.GROUP:
            return sorted(groups)
        if results_filter == ObjectType.CONFIG:
            return sorted(configs)
        return sorted(groups | configs)


class GymRegistrySearchPath(SearchPathPlugin):
    """Appends the registry source to every config search path, whatever `hydra.searchpath` is."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="rlrun", path=SEARCH_PATH)
