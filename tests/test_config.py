"""Config composition for every shipped yaml, presets, registry envs, and refusals."""

from collections import defaultdict
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra._internal.defaults_list import create_defaults_list
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from rlrun.cli import train_command as cli
from rlrun.config import ConfigError
from rlrun.config.flat import flatten
from rlrun.envs.config_source import env_family, registered_env_ids
from rlrun.registry import algorithms

CONF = Path(__file__).resolve().parent.parent / "rlrun" / "conf"
ENV_FILES = sorted(p.stem for p in (CONF / "env").glob("*.yaml"))
MUJOCO = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid", "InvertedPendulum",
          "InvertedDoublePendulum", "Reacher", "Swimmer")
ENV_IDS = sorted({"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
                  "Pendulum-v1", "lm", *(f"{name}-{v}" for name in MUJOCO for v in ("v4", "v5"))})
"""The env ids the presets are written for: each composes with every algorithm."""


@pytest.mark.parametrize("env", ENV_FILES)
def test_env_files_hold_only_what_the_registry_cannot_generate(env):
    shipped = OmegaConf.to_container(OmegaConf.load(CONF / "env" / f"{env}.yaml"))
    if env in registered_env_ids():
        generated = {"defaults": [{"/family": env_family(env)}], "env": {"id": env}}
        assert shipped != generated, f"conf/env/{env}.yaml repeats the generated node: delete it"


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(algorithms()))
@pytest.mark.parametrize("env", ENV_IDS)
def test_every_algo_and_env_composes(compose_cfg, algo, env):
    cfg = compose_cfg([f"algo={algo}", f"env={env}"])
    assert cfg.algo.name == algo
    assert cfg.env.id == env
    assert cfg.env.family in ("classic", "mujoco", "lm")


@pytest.mark.parametrize("algo", sorted(algorithms()))
def test_algo_files_only_select_their_schema_and_optimizer(algo):
    """Defaults are stated once, in the dataclass: conf/algo/<name>.yaml sets no value; it may
    pick the algorithm's optimizer with an `override` (a choice the command line overrides)."""
    shipped = OmegaConf.to_container(OmegaConf.load(CONF / "algo" / f"{algo}.yaml"))
    picks = [d for d in shipped["defaults"] if isinstance(d, dict)]
    assert shipped == {"defaults": [f"{algo}_schema", *picks, "_self_"]}
    assert all(list(pick) == ["override /optimizer@_global_.optimizer"] for pick in picks)


@pytest.mark.parametrize("group", ["network", "optimizer"])
def test_choice_files_select_their_schema(group):
    for path in sorted((CONF / group).glob("*.yaml")):
        shipped = OmegaConf.to_container(OmegaConf.load(path))
        assert shipped["defaults"] == [f"{path.stem}_schema", "_self_"], path


GROUPS = ("algo", "env", "network", "optimizer", "logger", "eval", "checkpoint", "resume",
          "divergence", "hparams_search")
"""The config sections a choice or a schema owns: `<group>.name` (`env.id`) is set only there."""


def _yaml_values(path: Path) -> dict:
    """The values a yaml file under conf/ sets, by dotted key in the composed config."""
    node = OmegaConf.to_container(OmegaConf.load(path))
    node.pop("defaults", None)
    node.pop("hydra", None)
    relative = path.relative_to(CONF)
    if "@package _global_" not in path.read_text() and len(relative.parts) > 1:
        node = {relative.parts[0]: node}
    return flatten(node) if node else {}


def test_only_a_groups_own_files_set_its_name():
    """A preset, experiment or other file picks a group with `override /group: choice`: a name
    set as a value would beat the user's `group=choice` on the command line."""
    offenders = []
    for path in sorted(CONF.rglob("*.yaml")):
        group = path.relative_to(CONF).parts[0]
        for key in _yaml_values(path):
            section, _, name = key.partition(".")
            if section in GROUPS and name == ("id" if section == "env" else "name") and section != group:
                offenders.append(f"{path.relative_to(CONF)}: {key}")
    assert not offenders, f"set a group's choice as a value: {offenders}"


FAMILY_ENVS = {"classic": "CartPole-v1", "mujoco": "HalfCheetah-v4", "box2d": "LunarLander-v3",
               "atari": "ALE/Pong-v5", "lm": "lm", "other": "FrozenLake-v1"}
"""A registered env of each preset family (its env node generated, no yaml file)."""


def _contexts() -> list[tuple[str, list[str]]]:
    """(config name, overrides) under which every yaml file under conf/ applies, each preset with
    every env file of its family (an env file may set what the preset must set back)."""
    env_files = {path.stem: OmegaConf.load(path).defaults[0]["/family"]
                 for path in (CONF / "env").glob("*.yaml")}
    envs = defaultdict(list, {family: [env] for family, env in FAMILY_ENVS.items()})
    for env, family in env_files.items():
        envs[family].append(env)
    contexts = [("eval", []), *(("train", [f"env={env}"]) for env in FAMILY_ENVS.values())]
    contexts += [("train", [f"env={env}"]) for env in env_files]
    for preset in sorted((CONF / "preset").glob("*.yaml")):
        algo = max((name for name in algorithms() if preset.stem.startswith(f"{name}_")), key=len)
        family = preset.stem[len(algo) + 1:]
        contexts += [("train", [f"algo={algo}", f"env={env}"]) for env in envs[family]]
    for preset in sorted((CONF / "preset" / "env").glob("*.yaml")):
        algo = max((name for name in algorithms() if preset.stem.startswith(f"{name}_")), key=len)
        contexts.append(("train", [f"algo={algo}", f"env={preset.stem[len(algo) + 1:]}"]))
    for group in ("algo", "network", "optimizer", "logger", "hparams_search"):
        contexts += [("train", [f"{group}={path.stem}"]) for path in (CONF / group).glob("*.yaml")]
    contexts += [("train", [f"+experiment={path.stem}"]) for path in (CONF / "experiment").glob("*.yaml")]
    for path in sorted((CONF / "bench").rglob("*.yaml")):
        contexts.append(("train", [f"+bench/{path.parent.name}={path.stem}"]))
    return contexts


def _leaves(config: DictConfig) -> dict:
    """The values of `config` by dotted key; a section a schema leaves missing with a dataclass
    type (`logger: LoggerConfig = MISSING`) holds that dataclass's defaults, as in a merge."""
    for key in [key for key in config if OmegaConf.is_missing(config, key)]:
        try:
            config = OmegaConf.merge(config, {key: {}})
        except ValidationError:  # a missing value, not a section
            pass
    values = OmegaConf.to_container(config, resolve=False)
    values.pop("hydra", None)
    return {key: value for key, value in flatten(values).items() if value != {}}


def _layers(config_name: str, overrides: list[str], loader, repo):
    """Each config Hydra merges for these overrides, in order (Hydra's own aside): its path under
    conf/ (None for a schema or a generated env node), the values it sets and the values of the
    configs merged before it, by dotted key."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    defaults = create_defaults_list(repo=repo, config_name=config_name, overrides_list=parsed,
                                    prepend_hydra=True, skip_missing=False)
    before: dict = {}
    for default in defaults.defaults:
        if default.package is not None and default.package.startswith("hydra"):
            continue
        loaded = loader._load_single_config(default=default, repo=repo)
        values = _leaves(loaded.config)
        path = CONF / f"{default.config_path}.yaml"
        yield (path if loaded.provider == "main" and path.is_file() else None), values, before
        before = {**before, **values}


@pytest.mark.slow
def test_no_file_repeats_the_value_a_key_has_without_it(atari_id):
    """Every value a preset, group or primary file sets differs, in at least one composition
    where the file applies, from the value the layers before it give (schema defaults, the group
    files, the env and family files, the family preset): values are stated once."""
    cli._setup()
    visited, needed, repeats = set(), set(), defaultdict(set)
    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        repo = loader._parse_overrides_and_create_caching_repo("train", [])[1]
        for config_name, overrides in _contexts():
            for path, values, before in _layers(config_name, overrides, loader, repo):
                if path is None:
                    continue
                visited.add(path)
                for key, value in values.items():
                    if key in before and before[key] == value:
                        repeats[path].add(f"{key}={value}")
                    else:
                        needed.add((path, key))
    unvisited = {p for p in CONF.rglob("*.yaml") if p.relative_to(CONF).parts[0] not in ("hydra", "suite")}
    assert unvisited <= visited, f"no context composes {sorted(map(str, unvisited - visited))}"
    offenders = {str(path.relative_to(CONF)): sorted(v for v in values if (path, v.partition("=")[0]) not in needed)
                 for path, values in repeats.items()}
    offenders = {path: values for path, values in offenders.items() if values}
    assert not offenders, f"values that repeat what the layers before them give: {offenders}"


@pytest.mark.parametrize("group", ["network", "optimizer", "logger"])
def test_every_group_option_composes(compose_cfg, group):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose_cfg([f"{group}={option}"])
        assert getattr(cfg, group) is not None


def test_mujoco_preset_is_cleanrl_continuous(compose_cfg):
    cfg = compose_cfg(["algo=ppo", "env=Hopper-v4"])
    assert (cfg.env.num_envs, cfg.algo.num_steps, cfg.algo.num_epochs, cfg.algo.num_minibatches) == (1, 2048, 10, 32)
    assert (cfg.optimizer.lr, cfg.optimizer.schedule) == (3e-4, "linear")
    assert (cfg.algo.gamma, cfg.algo.gae_lambda, cfg.algo.clip_coef, cfg.algo.ent_coef) == (0.99, 0.95, 0.2, 0.0)
    assert cfg.algo.max_grad_norm == 0.5
    assert cfg.env.normalize_obs and cfg.env.normalize_reward
    assert (cfg.env.clip_obs, cfg.env.clip_reward) == (10.0, 10.0)
    assert (cfg.network.hidden_sizes, cfg.network.activation, cfg.network.shared) == ([64, 64], "tanh", False)
    assert cfg.network.init == "orthogonal"


def test_classic_preset_is_cleanrl_ppo(compose_cfg):
    cfg = compose_cfg([])
    assert cfg.env.id == "CartPole-v1"
    assert (cfg.env.num_envs, cfg.algo.num_steps, cfg.algo.num_epochs, cfg.algo.num_minibatches) == (4, 128, 4, 4)
    assert (cfg.optimizer.lr, cfg.optimizer.schedule, cfg.algo.ent_coef) == (2.5e-4, "linear", 0.01)


def test_user_override_beats_preset(compose_cfg):
    cfg = compose_cfg(["env=Hopper-v4", "algo.num_steps=512", "optimizer.lr=1e-3"])
    assert (cfg.algo.num_steps, cfg.optimizer.lr) == (512, 1e-3)


def test_registered_env_without_yaml_file(compose_cfg):
    cfg = compose_cfg(["env=FrozenLake-v1"])
    assert (cfg.env.id, cfg.env.family) == ("FrozenLake-v1", "other")
    cfg = compose_cfg(["env=Pusher-v5"])  # registered, no yaml: gets the mujoco preset
    assert cfg.env.family == "mujoco" and cfg.algo.num_steps == 2048


def test_logger_combination(compose_cfg):
    cfg = compose_cfg(["logger=[tensorboard,wandb]"])
    assert cfg.logger.tensorboard and cfg.logger.wandb and cfg.logger.jsonl


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optimizer.lr=-1", "optimizer.lr"),
        ("algo.clip_coef=0", "algo.clip_coef"),
        ("algo.gamma=1.5", "algo.gamma"),
        ("algo.gamma=0", "algo.gamma"),
        ("env.num_envs=0", "env.num_envs"),
        ("total_timesteps=0", "total_timesteps"),
        ("device=tpu", "device"),
        ("optimizer.schedule=cosine", "optimizer.schedule"),
        ("network.activation=sigmoid", "network.activation"),
    ],
)
def test_invalid_values_are_refused(compose_cfg, override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        compose_cfg([override])


@pytest.mark.parametrize("override", ["total_timesteps=abc", "algo.num_steps=1.5", "algo.no_such_key=1", "seed=[1]"])
def test_wrong_types_and_unknown_keys_are_refused(compose_cfg, override):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)):
        compose_cfg([override])


@pytest.mark.parametrize("overrides, fragment", [
    (["env.backend=envpool", "env.vectorization=async"], "drop env.vectorization=async"),
    (["env.backend=envpool", "deterministic=true"], "set env.backend=gymnasium"),
    (["env.backend=envpool", "env.family=atari"], "not wired for Atari"),
    (["env.backend=gym"], "env.backend"),
    (["env.threads=0"], "env.threads"),
])
def test_refused_env_backend_combinations(compose_cfg, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        compose_cfg(overrides)


def test_a_users_own_search_path_keeps_every_registered_env(compose_cfg, tmp_path):
    cfg = compose_cfg([f"hydra.searchpath=[file://{tmp_path}]", "env=LunarLander-v3"])
    assert cfg.env.id == "LunarLander-v3" and cfg.env.family == "box2d"


def test_each_algorithms_config_class_is_the_one_its_spec_names():
    """The config classes that composing reads (rlrun.algos.configs) are those the algorithms train
    with (their SPEC): one per algorithm, under its name."""
    from rlrun.registry import schemas

    assert schemas() == {name: spec.config for name, spec in algorithms().items()}


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
INVALID = {"gamma": 0.0, "num_steps": 0, "gae_lambda": 1.5, "ent_coef": -1.0, "vf_coef": -1.0,
           "max_grad_norm": -1.0, "buffer_size": 0, "batch_size": 0, "learning_starts": -1,
           "train_every": 0, "gradient_steps": 0}
"""A value each field of the shared config blocks refuses."""


@pytest.mark.parametrize("case", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_each_algorithms_keys_keep_the_order_its_stored_configs_have(case):
    """Every run dir and checkpoint stores its config with the keys in the schema's order, so a
    config built from blocks keeps the order of the keys an older rlrun wrote."""
    import dataclasses

    from rlrun.registry import schemas

    stored = OmegaConf.load(FIXTURES / case / ".hydra" / "config.yaml").algo
    fields = [f.name for f in dataclasses.fields(schemas()[stored.name])]
    assert [key for key in fields if key in stored] == list(stored)


def test_a_block_checks_its_fields_in_every_config_that_has_them():
    """The blocks of rlrun.algos.configs.mixins check their fields wherever they are used: every
    algorithm's config refuses each field's invalid value with the block's own message (a
    `__post_init__` that skips `super().__post_init__()` would leave them unchecked)."""
    import dataclasses

    from rlrun.algos.configs import mixins
    from rlrun.registry import schemas

    blocks = [mixins.Discounted, mixins.Rollout, mixins.GAE, mixins.ActorCriticLoss,
              mixins.ReplaySettings]
    users = defaultdict(list)
    for block in blocks:
        keys = {f.name for f in dataclasses.fields(block)} - {"name"}
        for algo, schema in schemas().items():
            if not keys <= {f.name for f in dataclasses.fields(schema)}:
                continue
            users[block.__name__].append(algo)
            for key in sorted(keys & INVALID.keys()):  # norm_adv: a flag, nothing to check
                with pytest.raises(ConfigError) as expected:
                    block(**{key: INVALID[key]})
                with pytest.raises(ConfigError) as refused:
                    schema(**{key: INVALID[key]})
                assert str(refused.value) == str(expected.value), (algo, key)
    assert sorted(users["ReplaySettings"]) == ["ddpg", "dqn", "sac", "td3"]
    assert all(len(users[block.__name__]) >= 2 for block in blocks), users
