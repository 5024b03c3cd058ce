"""The user's own envs and installed env packages: `env=<module>:<id>`, `env.imports=[...]`,
`env.entry_point=<module>:<Class>`, `family=`; in composition, sweep workers (joblib,
submitit_local) with the user's own wrappers, resume and `rlrun-eval` from another directory;
`render_mode` passed to gym.make only to render."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import one_line_error
from omegaconf import OmegaConf

from rlrun.cli.arguments import rewrite
from rlrun.config import ConfigError, EnvConfig
from rlrun.envs.imports import SHARED

TINY = ["total_timesteps=128", "algo.num_steps=64", "eval.episodes=1", "eval.num_envs=1",
        "eval.every_steps=0"]
MODULES = {
    # Registers an id; like many users' envs, its constructor takes no render_mode.
    "mymod": """
        import gymnasium as gym
        from gymnasium.envs.classic_control.cartpole import CartPoleEnv

        class MyCartPole(CartPoleEnv):
            def __init__(self):
                super().__init__()

        gym.register(id="MyCartPole-v0", entry_point=MyCartPole, max_episode_steps=100)
    """,
    "othermod": """
        import gymnasium as gym

        gym.register(id="MyOther-v0", entry_point="mymod:MyCartPole", max_episode_steps=100)
    """,
    # Registers nothing: its classes are reached by env.entry_point.
    "myenvs": """
        from gymnasium.envs.classic_control.cartpole import CartPoleEnv

        class Plain(CartPoleEnv):
            def __init__(self, length: float = 0.5):
                super().__init__()
                self.length = length

        class HumanOnly(CartPoleEnv):
            metadata = {"render_modes": ["human"], "render_fps": 50}
    """,
    "badmod": "import foo_not_installed\n",
    # The user's own wrappers: the observation repeated 3 times (4 -> 12), the reward doubled.
    "mywrappers": """
        import gymnasium as gym
        import numpy as np

        class Repeat(gym.ObservationWrapper):
            def __init__(self, env, times):
                super().__init__(env)
                self.times = times
                low, high = env.observation_space.low, env.observation_space.high
                self.observation_space = gym.spaces.Box(np.tile(low, times), np.tile(high, times))

            def observation(self, obs):
                return np.tile(obs, self.times).astype(np.float32)

        class ScaleReward(gym.RewardWrapper):
            def __init__(self, env, scale):
                super().__init__(env)
                self.scale = scale

            def reward(self, reward):
                return self.scale * reward
    """,
}
REGISTERED = ("MyCartPole-v0", "MyOther-v0", "Plain", "HumanOnly")


def write_modules(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in MODULES.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """The current directory holds the user's modules (imported in this process, then forgotten,
    so that each test imports its own)."""
    folder = write_modules(tmp_path / "user")
    monkeypatch.chdir(folder)
    monkeypatch.setenv(SHARED, "{}")  # what composing shares is forgotten after the test
    monkeypatch.setattr(sys, "path", list(sys.path))  # rlrun puts the current directory on it
    yield folder
    for name in MODULES:
        sys.modules.pop(name, None)
    for env_id in REGISTERED:
        gym.registry.pop(env_id, None)


def compose(overrides: list[str]):
    from rlrun.cli import train_command as cli
    from rlrun.cli.compose import compose_checked

    cli._setup()
    return OmegaConf.to_object(compose_checked("train", ["logger.console=false", *overrides]))


def refusal(overrides: list[str], capsys) -> str:
    """The one line composing `overrides` exits with (exit code 2)."""
    with pytest.raises(SystemExit) as exited:
        compose(overrides)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def run(command: str, *args: str, cwd: Path, pythonpath: Path | None = None, timeout: float = 300):
    """`command` (rlrun's, or bash) in a fresh process in `cwd`, with rlrun's commands on PATH;
    `pythonpath` (the user's folder) put on PYTHONPATH."""
    paths = [str(pythonpath)] if pythonpath else []
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(paths), "PATH": scripts + os.pathsep + os.environ["PATH"]}
    env.pop(SHARED, None)
    return subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=timeout, env=env)


def printed_run_dir(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return re.search(r"^Finished at step .*; run dir (.+)$", result.stdout, re.MULTILINE).group(1)


def evaluates_from_elsewhere(run_dir: str, user: Path | None, elsewhere: Path, *args: str) -> dict:
    """`rlrun-eval <run dir> [args]` in a fresh process in another directory, with only the
    user's folder on PYTHONPATH; returns the evaluation JSON."""
    elsewhere.mkdir(exist_ok=True)
    result = run("rlrun-eval", run_dir, "eval.episodes=1", "eval.num_envs=1", *args, cwd=elsewhere,
                 pythonpath=user)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((Path(run_dir) / "checkpoints" / "last.eval.json").read_text())


# ----- before composing ---------------------------------------------------------------------------
def test_an_entry_point_without_env_is_named_after_its_class():
    assert rewrite(["env.entry_point=pkg.envs:MyEnv", "seed=1"]) == [
        "env.entry_point=pkg.envs:MyEnv", "env=MyEnv", "seed=1"]
    assert rewrite(["env=Mine", "env.entry_point=pkg.envs:MyEnv"]) == [
        "env=Mine", "env.entry_point=pkg.envs:MyEnv"]
    assert rewrite(["seed=1"]) == ["seed=1"]


def test_ids_of_the_users_module_compose_with_their_family(user_dir):
    cfg = compose(["env=mymod:MyCartPole-v0"])
    assert (cfg.env.id, cfg.env.family, cfg.env.imports) == ("mymod:MyCartPole-v0", "other", [])
    cfg = compose(["env=MyCartPole-v0", "env.imports=[mymod]"])
    assert (cfg.env.id, cfg.env.family, cfg.env.imports) == ("MyCartPole-v0", "other", ["mymod"])


def test_the_family_of_an_id_registered_by_a_partial_and_of_the_dm_control_suite():
    import functools

    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    from rlrun.envs.config_source import env_family

    # Shimmy registers the DeepMind Control Suite by functools.partial (of its own function).
    for env_id in ("PartialCartPole-v0", "dm_control/cartpole-fake-v0"):
        gym.register(id=env_id, entry_point=functools.partial(CartPoleEnv, sutton_barto_reward=True))
    try:
        assert env_family("PartialCartPole-v0") == "classic"  # the partial's class, not functools
        assert env_family("dm_control/cartpole-fake-v0") == "mujoco"
    finally:
        gym.registry.pop("PartialCartPole-v0")
        gym.registry.pop("dm_control/cartpole-fake-v0")


def test_a_worker_imports_what_the_main_process_shared(user_dir, tmp_path, monkeypatch):
    from rlrun.envs import imports
    from rlrun.envs.config_source import registered_env_ids

    compose(["env=MyCartPole-v0", "env.imports=[mymod]"])
    compose(["env.entry_point=myenvs:Plain", "env=Plain"])
    shared = json.loads(os.environ[SHARED])
    assert shared == {"path": [str(user_dir)], "imports": ["mymod"],
                      "entry_points": {"Plain": "myenvs:Plain"}}
    for name in MODULES:  # a fresh worker process, started in another directory
        sys.modules.pop(name, None)
    for env_id in REGISTERED:
        gym.registry.pop(env_id, None)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(user_dir)])
    monkeypatch.setattr(imports, "_loaded_shared", None)
    monkeypatch.chdir(tmp_path)
    assert {"MyCartPole-v0", "Plain"} <= set(registered_env_ids())
    assert gym.registry["Plain"].entry_point == "myenvs:Plain"


def test_family_on_the_command_line_picks_the_preset_family(user_dir):
    cfg = compose(["env=mymod:MyCartPole-v0", "family=mujoco"])
    assert cfg.env.family == "mujoco" and cfg.algo.num_steps == 2048  # conf/preset/ppo_mujoco.yaml
    assert compose(["env=mymod:MyCartPole-v0"]).algo.num_steps == 128  # ppo's default


def test_an_entry_point_makes_an_unregistered_class_with_its_kwargs(user_dir):
    from rlrun.envs.factory import make_vec_env

    cfg = compose(["env.entry_point=myenvs:Plain", "env=Plain", "+env.kwargs.length=0.7"])
    assert (cfg.env.id, cfg.env.entry_point, cfg.env.family) == ("Plain", "myenvs:Plain", "other")
    envs = make_vec_env(cfg.env, 1)
    assert envs.envs.envs[0].unwrapped.length == 0.7  # made without render_mode, with the kwargs
    envs.close()


@pytest.mark.parametrize("overrides, expected", [
    (["env=mymod:MyCartPol-v0"], "did you mean mymod:MyCartPole-v0, CartPole-v0"),
    (["env=MyCartPol-v0", "env.imports=[mymod]"], "did you mean MyCartPole-v0, CartPole-v0"),
])
def test_a_typo_after_the_import_gets_did_you_mean(user_dir, capsys, overrides, expected):
    line = refusal(overrides, capsys)
    assert expected in line and "env.imports=[<package>]" in line and "env.entry_point=" in line
    assert "python -m" not in line


@pytest.mark.parametrize("overrides, expected", [
    (["env=MyCartPole-v0", "env.imports=[badmod]"],
     "rlrun: env.imports: cannot import 'badmod': No module named 'foo_not_installed'"),
    (["env=nomod:MyCartPole-v0"],
     "rlrun: env=nomod:MyCartPole-v0: cannot import 'nomod': No module named 'nomod' (not in "),
    (["env.entry_point=myenvs:Plian", "env=Plian"],
     "rlrun: env.entry_point: module 'myenvs' has no class 'Plian'; did you mean Plain?"),
    (["env.entry_point=myenvs:Plain", "env=CartPole-v1"],
     "rlrun: env.entry_point=myenvs:Plain makes an unregistered class, but env=CartPole-v1 is"),
    (["env=MyCartPole-v0", "env.import=[mymod]"],  # a typo in the key, not in the env id
     "rlrun: unknown key 'env.import'; did you mean env.imports?"),
    (["env=Plain", "+env.entrypoint=myenvs:Plain"],
     "rlrun: unknown key 'env.entrypoint'; did you mean env.entry_point?"),
])
def test_a_module_that_cannot_be_imported_is_one_line(user_dir, capsys, overrides, expected):
    assert refusal(overrides, capsys).startswith(expected)


def test_video_refuses_an_env_that_cannot_render_in_one_line(user_dir, tmp_path):
    from rlrun.envs.factory import VideoSpec, make_vec_env

    video = VideoSpec(tmp_path / "videos", 1, "v")
    with pytest.raises(ConfigError, match=r"MyCartPole-v0 cannot render .*takes no render_mode"):
        make_vec_env(EnvConfig(id="mymod:MyCartPole-v0"), 1, training=False, video=video)
    human_only = EnvConfig(id="HumanOnly", entry_point="myenvs:HumanOnly")
    with pytest.raises(ConfigError, match=r"render_modes: \['human'\]\); drop eval.video=true"):
        make_vec_env(human_only, 1, training=False, video=video)
    assert not video.folder.exists()


def test_a_recording_names_a_class_registered_by_the_users_module_by_its_import_path(user_dir):
    from rlrun.envs.factory import make_vec_env
    from rlrun.envs.recording import EpisodeRecording

    recording = EpisodeRecording([1])
    envs = make_vec_env(EnvConfig(id="mymod:MyCartPole-v0"), 1, training=False,
                        record_episodes=recording)
    spec = recording.env_spec()  # Minari serialises it: Gymnasium refuses callables
    assert (spec.id, spec.entry_point, spec.max_episode_steps) == ("MyCartPole-v0",
                                                                   "mymod:MyCartPole", 100)
    assert gym.make(spec).unwrapped.__class__.__name__ == "MyCartPole"
    envs.close()


def test_minigrid_composes_and_its_dict_space_is_refused_in_one_line(user_dir, capsys):
    pytest.importorskip("minigrid")
    line = refusal(["env=MiniGrid-Empty-5x5-v0", "env.imports=[minigrid]"], capsys)
    assert line.startswith("rlrun: observation space Dict(") and "is not supported" in line


# ----- in fresh processes: training, resume, sweep workers, rlrun-eval from elsewhere -------------
@pytest.mark.slow
def test_a_users_env_trains_resumes_and_evaluates_from_another_directory(tmp_path, monkeypatch):
    from rlrun.export.rebuild import load_policy

    user = write_modules(tmp_path / "user")
    run_dir = printed_run_dir(run("rlrun", "env=MyCartPole-v0", "env.imports=[mymod]", *TINY,
                                  cwd=user))
    resumed = run("rlrun", f"resume={run_dir}", "total_timesteps=256", cwd=user)
    assert printed_run_dir(resumed) == run_dir and "Finished at step 256" in resumed.stdout
    monkeypatch.chdir(tmp_path)  # the checkpoint names the module, which is not importable here
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv(SHARED, "{}")
    with pytest.raises(ConfigError, match=r"^env.imports: cannot import 'mymod': No module named "
                                          r"'mymod' \(not in .* add that folder to PYTHONPATH"):
        load_policy(run_dir)
    assert evaluates_from_elsewhere(run_dir, user, tmp_path / "elsewhere")["global_step"] == 256


def test_a_failing_import_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    user = write_modules(tmp_path / "user")
    line = one_line_error(run("rlrun", "env=MyCartPole-v0", "env.imports=[badmod]", cwd=user))
    assert line == "rlrun: env.imports: cannot import 'badmod': No module named 'foo_not_installed'"
    assert not (user / "outputs").exists()


PACKAGES = {
    "highway_env": ["env=highway-fast-v0", "eval.max_episode_steps=8"],  # 30 ms a step
    "gymnasium_robotics": ["env=PointMaze_UMaze-v3"],  # goal-conditioned Dict observations
    # Dict observations made one vector by the package's own wrapper.
    "minigrid": ["env=MiniGrid-Empty-5x5-v0", "env.wrappers=[minigrid.wrappers.FlatObsWrapper]"],
}
"""Installed env packages (the test extra) and a command line for one of their ids. The Fetch
envs of gymnasium-robotics 1.4.2 fail under mujoco >= 3.12 (a bare assert on joint types)."""


@pytest.mark.slow
@pytest.mark.parametrize("package, family", [("highway_env", "other"),
                                             ("gymnasium_robotics", "mujoco"),
                                             ("minigrid", "other")])
def test_an_env_package_trains_resumes_and_evaluates_from_another_directory(tmp_path, package,
                                                                             family):
    pytest.importorskip(package)
    args = [*PACKAGES[package], f"env.imports=[{package}]", *TINY]
    run_dir = printed_run_dir(run("rlrun", *args, cwd=tmp_path))
    config = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    assert (config.env.family, list(config.env.imports)) == (family, [package])
    resumed = run("rlrun", f"resume={run_dir}", "total_timesteps=192", cwd=tmp_path)
    assert "Finished at step 192" in resumed.stdout, resumed.stderr[-3000:]
    evaluated = evaluates_from_elsewhere(run_dir, None, tmp_path / "elsewhere",
                                         "eval.max_episode_steps=8")
    assert evaluated["global_step"] == 192 and evaluated["episodes"] == 1
    assert evaluated["env_wrappers"] == OmegaConf.to_container(config.env.wrappers)


WRAPPERS = ("env.wrappers=[{_target_: mywrappers.Repeat, times: 3}, "
            "{_target_: mywrappers.ScaleReward, scale: 2}]")
SWEEPS = {
    # A job of each: the module of `mymod:` imported by the registry's config source itself;
    # `othermod`, which registers MyOther-v0, imported from the shared env.imports.
    "module id and imports": ["env=mymod:MyCartPole-v0,MyOther-v0", "env.imports=[othermod]"],
    "entry point": ["env.entry_point=myenvs:Plain", "seed=0,1"],
}


def printed_sweep_run_dirs(result: subprocess.CompletedProcess) -> list[str]:
    """The run dirs a sweep prints when it ends."""
    assert result.returncode == 0, result.stderr[-3000:]
    done = re.search(r"^rlrun: sweep done, (\d+) run dirs .*:\n((?:  .+\n)*)", result.stdout,
                     re.MULTILINE)
    assert done, result.stdout[-3000:]
    run_dirs = [line.strip() for line in done.group(2).splitlines()]
    assert len(run_dirs) == int(done.group(1))
    return run_dirs


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SWEEPS))
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_workers_import_the_users_envs_and_wrappers(tmp_path, launcher, case):
    """A sweep from the user's folder; then `rlrun-eval <printed run dir>`, pasted into a shell
    in another directory, with only the user's folder on PYTHONPATH, evaluates each env of the
    sweep through the user's wrappers."""
    plugin = {"joblib": "hydra_joblib_launcher", "submitit_local": "hydra_submitit_launcher"}
    pytest.importorskip(f"hydra_plugins.{plugin[launcher]}")
    user = write_modules(tmp_path / "user")
    result = run("rlrun", "-m", f"hydra/launcher={launcher}", *SWEEPS[case], WRAPPERS, *TINY,
                 cwd=user)
    run_dirs = printed_sweep_run_dirs(result)
    assert len(run_dirs) == 2 and all(Path(d, "checkpoints", "last.pt").is_file() for d in run_dirs)
    envs = {OmegaConf.load(Path(d) / ".hydra/config.yaml").env.id: d for d in run_dirs}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for env_id, run_dir in envs.items():  # one evaluation for each env trained on
        pasted = run("bash", "-c", f"rlrun-eval {run_dir} eval.episodes=2 eval.num_envs=1",
                     cwd=elsewhere, pythonpath=user)
        assert pasted.returncode == 0, pasted.stderr[-3000:]
        evaluated = json.loads((Path(run_dir) / "checkpoints" / "last.eval.json").read_text())
        assert evaluated["env"] == env_id and evaluated["global_step"] == 128
        assert evaluated["env_wrappers"] == [{"_target_": "mywrappers.Repeat", "times": 3},
                                             {"_target_": "mywrappers.ScaleReward", "scale": 2}]
        assert evaluated["returns"] == [2.0 * length for length in evaluated["lengths"]]
