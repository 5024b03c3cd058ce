"""The env's keyword arguments (`env.kwargs.<name>=`), the user's wrappers (`env.wrappers`) in
training, evaluation and export, and `rlrun-eval` on a variant of the training env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import read_metrics, refused, rlrun_eval

from rlrun.cli import train_command as cli
from rlrun.config import ConfigError
from rlrun.envs.factory import _env_fn, make_vec_env

TINY = ["algo.num_steps=32", "total_timesteps=256", "eval.episodes=2", "eval.num_envs=2",
        "eval.every_steps=0"]

USER_WRAPPERS = textwrap.dedent('''
    """Wrappers of a user's own, imported from the test's temporary dir."""
    import gymnasium as gym
    import numpy as np


    class ScaleReward(gym.RewardWrapper):
        def __init__(self, env, scale):
            super().__init__(env)
            self.scale = scale

        def reward(self, reward):
            return self.scale * reward


    class AddReward(gym.RewardWrapper):
        def __init__(self, env, amount):
            super().__init__(env)
            self.amount = amount

        def reward(self, reward):
            return reward + self.amount


    class Repeat(gym.ObservationWrapper):
        """The observation vector `times` times over: (4,) -> (4 * times,)."""

        def __init__(self, env, times=2):
            super().__init__(env)
            self.times = times
            space = env.observation_space
            self.observation_space = gym.spaces.Box(
                np.tile(space.low, times), np.tile(space.high, times), dtype=np.float32)

        def observation(self, obs):
            return np.tile(obs, self.times).astype(np.float32)


    def not_a_wrapper(env):
        return 42
''')


@pytest.fixture
def user_wrappers(tmp_path_factory, monkeypatch):
    """A module `my_wrappers` of the user's own, importable as from the current directory."""
    folder = tmp_path_factory.getbasetemp() / "user_module"
    folder.mkdir(exist_ok=True)
    (folder / "my_wrappers.py").write_text(USER_WRAPPERS)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def made(cfg) -> object:
    """One env as rlrun makes it for `cfg` (wrappers and adapters on)."""
    return _env_fn(cfg.env, None)()


def test_kwargs_without_plus_reach_the_env_typed(compose_cfg):
    cfg = compose_cfg(["env=FrozenLake-v1", "env.kwargs.is_slippery=false",
                       "env.kwargs.desc=[SFF,FHF,FFG]"])
    assert cfg.env.kwargs == {"is_slippery": False, "desc": ["SFF", "FHF", "FFG"]}
    env = made(cfg)
    assert (env.unwrapped.nrow, env.unwrapped.ncol) == (3, 3)
    assert len(env.unwrapped.P[0][1]) == 1  # not slippery: one outcome per action
    assert env.observation_space.shape == (9,)  # one-hot of the 3x3 map
    env.reset(seed=0)
    rewards = [env.step(action)[1] for action in (1, 1, 2, 2)]  # down, down, right, right: goal
    assert rewards == [0, 0, 0, 1]
    pendulum = compose_cfg(["env=Pendulum-v1", "env.kwargs.g=9.5"])
    assert type(pendulum.env.kwargs["g"]) is float and made(pendulum).unwrapped.g == 9.5
    car = compose_cfg(["env=MountainCar-v0", "env.kwargs.goal_velocity=1"])
    assert type(car.env.kwargs["goal_velocity"]) is int and made(car).unwrapped.goal_velocity == 1
    # `+env.kwargs.<name>=` keeps working.
    added = compose_cfg(["env=FrozenLake-v1", "+env.kwargs.is_slippery=false"])
    assert added.env.kwargs == {"is_slippery": False}


def test_a_keyword_the_env_does_not_take_names_its_parameters(capsys):
    line = refused(capsys, cli.train, "env=FrozenLake-v1", "env.kwargs.is_slipery=false")
    assert line.startswith(  # (Gymnasium >= 1.1 adds success_rate, reward_schedule)
        "rlrun: env.kwargs.is_slipery: FrozenLake-v1 does not take 'is_slipery' (did you mean "
        "is_slippery?); it takes desc, map_name, is_slippery"
    )
    assert "did you mean env.kwargs" in refused(capsys, cli.train, "env.kwarg.x=1")


def test_wrappers_apply_in_their_order(compose_cfg, user_wrappers):
    scale = "{_target_: my_wrappers.ScaleReward, scale: 2}"
    add = "{_target_: my_wrappers.AddReward, amount: 1}"
    for wrappers, reward in ((f"[{scale},{add}]", 3.0), (f"[{add},{scale}]", 4.0)):
        env = made(compose_cfg([f"env.wrappers={wrappers}"]))
        env.reset(seed=0)
        assert env.step(0)[1] == reward  # CartPole's reward 1: 1*2+1, or (1+1)*2


def test_a_real_third_party_wrapper_with_keywords(compose_cfg):
    clip = "{_target_: gymnasium.wrappers.ClipReward, min_reward: 0, max_reward: 0.25}"
    env = made(compose_cfg([f"env.wrappers=[{clip}]"]))
    env.reset(seed=0)
    assert env.step(0)[1] == 0.25
    # Nested targets are built too: a reward function for TransformReward.
    negate = "{_target_: gymnasium.wrappers.TransformReward, func: {_target_: operator.neg, " \
             "_partial_: true}}"
    env = made(compose_cfg([f"env.wrappers=[{negate}]"]))
    env.reset(seed=0)
    assert env.step(0)[1] == -1.0
    # Lists reach a wrapper as tuples, which Gymnasium's ReshapeObservation requires.
    reshape = "{_target_: gymnasium.wrappers.ReshapeObservation, shape: [2, 2]}"
    env = made(compose_cfg([f"env.wrappers=[{reshape}]"]))
    assert env.env.observation_space.shape == (2, 2) and env.observation_space.shape == (4,)


@pytest.mark.slow
def test_user_wrappers_shape_training_evaluation_and_export(train_run, tmp_path, monkeypatch,
                                                            user_wrappers):
    onnx = pytest.importorskip("onnx", reason="eval.export=onnx needs pip install -e '.[export]'")
    pytest.importorskip("onnxscript", reason="eval.export=onnx needs pip install -e '.[export]'")
    repeat = "{_target_: my_wrappers.Repeat, times: 3}"
    scale = "{_target_: my_wrappers.ScaleReward, scale: 2}"
    run_dir = tmp_path / "run"
    train_run([f"env.wrappers=[{repeat},{scale}]", *TINY], run_dir)
    rows = read_metrics(run_dir)
    episodes = [row for row in rows if "rollout/ep_return_mean" in row]
    assert episodes
    assert all(row["rollout/ep_return_mean"] == 2 * row["rollout/ep_len_mean"] for row in episodes)
    # rlrun-eval rebuilds the wrappers from the checkpoint's config, and exports the wrapped input.
    rlrun_eval(monkeypatch, run_dir, "eval.episodes=3", "eval.num_envs=1", "eval.export=onnx",
               "device=cpu")
    report = json.loads((run_dir / "checkpoints" / "last.eval.json").read_text())
    assert report["returns"] == [2.0 * length for length in report["lengths"]]
    model = onnx.load(str(run_dir / "checkpoints" / "last.policy.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 12  # 4 x 3 (Repeat)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    targets = [wrapper["_target_"] for wrapper in json.loads(metadata["env_wrappers"])]
    assert targets == ["my_wrappers.Repeat", "my_wrappers.ScaleReward"]
    # ... and so does a new process elsewhere, with the user's module on its path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rlrun-eval"), str(run_dir), "eval.episodes=2"],
        cwd=elsewhere, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(user_wrappers), *sys.path])},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((run_dir / "checkpoints" / "last.eval.json").read_text())
    assert len(report["returns"]) == 2
    assert report["returns"] == [2.0 * length for length in report["lengths"]]


@pytest.mark.parametrize(
    "wrappers, fragment",
    [
        ("[no_such_module.Wrapper]",
         "env.wrappers[0]: cannot import 'no_such_module': No module named"),
        ("[my_wrappers.ScaleRewards]",
         "my_wrappers has no 'ScaleRewards'; did you mean my_wrappers.ScaleReward?"),
        ("[{_target_: my_wrappers.ScaleReward, scal: 2}]",
         ("env.wrappers[0].scal: my_wrappers.ScaleReward does not take 'scal' (did you mean "
         "scale?); it takes scale")),
        ("[my_wrappers.not_a_wrapper]",
         "my_wrappers.not_a_wrapper returned a int, not a Gymnasium env"),
        ("[{scale: 2}]", "env.wrappers[0]={'scale': 2} names no wrapper"),
    ],
)
def test_a_bad_wrapper_is_one_line_before_anything_is_written(capsys, tmp_path, monkeypatch,
                                                              user_wrappers, wrappers, fragment):
    monkeypatch.chdir(tmp_path)
    assert fragment in refused(capsys, cli.train, f"env.wrappers={wrappers}", "total_timesteps=64")
    assert list(tmp_path.iterdir()) == []


def test_envpool_refuses_wrappers(compose_cfg):
    with pytest.raises(ConfigError, match="drop env.backend=envpool"):
        compose_cfg(["env.backend=envpool", "env.wrappers=[gymnasium.wrappers.FlattenObservation]"])


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A tiny PPO run on CartPole-v1."""
    from conftest import train_in_process

    run_dir = tmp_path_factory.mktemp("cartpole")
    train_in_process(TINY, run_dir)
    return run_dir


def test_rlrun_eval_on_variants_of_the_training_env(cartpole_run, monkeypatch, capsys):
    checkpoints = cartpole_run / "checkpoints"
    rlrun_eval(monkeypatch, cartpole_run, "env.id=CartPole-v0", "eval.episodes=2")
    title = "ppo on CartPole-v0 (env.id=CartPole-v0; trained on CartPole-v1)"
    assert title in capsys.readouterr().out
    report = json.loads((checkpoints / "last.eval.env.id=CartPole-v0.json").read_text())
    assert (report["env"], report["trained_env"], report["env_overrides"]) == (
        "CartPole-v0", "CartPole-v1", ["env.id=CartPole-v0"])
    rlrun_eval(monkeypatch, cartpole_run, "env.max_episode_steps=5",
               "env.kwargs.sutton_barto_reward=true")
    (variant,) = checkpoints.glob("last.eval.env.max_episode_steps=5,*.json")
    report = json.loads(variant.read_text())
    assert report["env_kwargs"] == {"sutton_barto_reward": True}
    assert max(report["lengths"]) <= 5
    assert max(report["returns"]) <= 0  # Sutton and Barto's reward: 0 a step, -1 a fall
    assert not (checkpoints / "last.eval.json").exists()  # the training env's results stay apart


def test_rlrun_eval_deletes_a_key_of_the_env_back_to_its_default():
    from rlrun.config import EnvConfig
    from rlrun.export.rebuild import env_variant

    clip = {"_target_": "gymnasium.wrappers.ClipReward", "max_reward": 0.5}
    trained = EnvConfig(id="CartPole-v1", wrappers=[clip], max_episode_steps=50,
                        kwargs={"sutton_barto_reward": True})
    variant = env_variant(trained, ["~env.wrappers", "~env.max_episode_steps", "~env.kwargs"])
    assert (variant.wrappers, variant.max_episode_steps, variant.kwargs) == ([], None, {})
    assert env_variant(trained, ["~env.wrappers"]).kwargs == {"sutton_barto_reward": True}


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["env=Acrobot-v1"],
         ("cannot evaluate on Acrobot-v1 (env=Acrobot-v1): its observation and action spaces "
         "Box(6,) float32, Discrete(3) differ from the policy's Box(4,) float32, Discrete(2) "
         "(CartPole-v1)")),
        (["env.wrappers=[{_target_: gymnasium.wrappers.ClipReward, min_reward: 0}]",
          "env.kwargs.sutton_barto_rewards=true"], "did you mean sutton_barto_reward?"),
        (["env.normalize_obs=true"], "env.normalize_obs stays the checkpoint's"),
        (["~env.kwargs.nothing"], "has no env.kwargs.nothing to delete"),
    ],
)
def test_rlrun_eval_refuses_variants_it_cannot_run(cartpole_run, capsys, args, fragment):
    files = sorted((cartpole_run / "checkpoints").iterdir())
    assert fragment in refused(capsys, cli.evaluate, cartpole_run, *args)
    assert sorted((cartpole_run / "checkpoints").iterdir()) == files


def test_make_vec_env_wraps_every_env(compose_cfg, user_wrappers):
    cfg = compose_cfg(["env.wrappers=[{_target_: my_wrappers.Repeat, times: 2}]"]).env
    envs = make_vec_env(cfg, 2)
    assert envs.single_observation_space.shape == (8,) and envs.reset(seed=0).shape == (2, 8)
    envs.close()


def test_resume_counts_an_added_or_changed_keyword_as_a_change(compose_cfg):
    from omegaconf import OmegaConf

    from rlrun.run.resume import config_changes

    stored = OmegaConf.to_yaml(OmegaConf.structured(compose_cfg(["env=FrozenLake-v1"])))
    added = compose_cfg(["env=FrozenLake-v1", "env.kwargs.is_slippery=false"])
    assert config_changes(stored, added) == ["env.kwargs: {} -> {'is_slippery': False}"]
    assert config_changes(stored, compose_cfg(["env=FrozenLake-v1"])) == []
