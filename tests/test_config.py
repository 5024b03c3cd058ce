"""Config composition for every shipped yaml, presets, registry envs, and refusals."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlrun.config import ConfigError
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


@pytest.mark.parametrize("algo", sorted(algorithms()))
@pytest.mark.parametrize("env", ENV_IDS)
def test_every_algo_and_env_composes(compose_cfg, algo, env):
    cfg = compose_cfg([f"algo={algo}", f"env={env}"])
    assert cfg.algo.name == algo
    assert cfg.env.id == env
    assert cfg.env.family in ("classic", "mujoco", "lm")


@pytest.mark.parametrize("algo", sorted(algorithms()))
def test_algo_files_only_select_their_schema(algo):
    """Defaults are stated once, in the dataclass: conf/algo/<name>.yaml sets no value."""
    shipped = OmegaConf.to_container(OmegaConf.load(CONF / "algo" / f"{algo}.yaml"))
    assert shipped == {"defaults": [f"{algo}_schema", "_self_"]}


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "preset").glob("*.yaml")))
def test_family_presets_state_only_values_that_differ_from_the_defaults(preset):
    algo = max((name for name in algorithms() if preset.startswith(f"{name}_")), key=len)
    values = OmegaConf.to_container(OmegaConf.load(CONF / "preset" / f"{preset}.yaml"))
    defaults = vars(algorithms()[algo].config())
    repeated = [key for key, value in values.get("algo", {}).items() if defaults.get(key) == value]
    assert not repeated, f"conf/preset/{preset}.yaml repeats the defaults of algo.{repeated}"


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
