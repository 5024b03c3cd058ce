"""rlrun-eval eval.video (MP4 of evaluation episodes) and eval.export (self-contained policy files)."""

from __future__ import annotations

import json
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_EVAL, rlrun_eval

from rlrun.config import ConfigError
from rlrun.envs.normalize import ObsNormalizer
from rlrun.export.formats import ExportedPolicy
from rlrun.export.rebuild import load_policy


def checkpoint_policy(run_dir):
    """The acting network, observation normaliser and a raw env of run_dir's last.pt."""
    loaded = load_policy(run_dir)
    env = gym.make(loaded.train_cfg.env.id)
    return loaded.policy, loaded.obs_normalizer(env.observation_space), env


def test_training_refuses_eval_only_options(compose_cfg):
    for override in ("eval.video=true", "eval.export=onnx"):
        with pytest.raises(ConfigError, match="rlrun-eval"):
            compose_cfg([override])
    with pytest.raises(ConfigError, match="eval.export"):
        compose_cfg(["eval.export=tflite"])
    with pytest.raises(ConfigError, match="eval.video_episodes"):
        compose_cfg(["eval.episodes=2", "eval.video_episodes=3"])


def test_eval_video_records_the_evaluated_episodes(train_run, tmp_path, monkeypatch):
    pytest.importorskip("moviepy", reason="eval.video needs moviepy: pip install -e '.[video]'")
    pytest.importorskip("pygame", reason="CartPole renders with pygame: pip install -e '.[video]'")
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="comes with moviepy")
    train_run(["env=CartPole-v1", "algo.num_steps=32", "total_timesteps=128", *TINY_EVAL], tmp_path)
    rlrun_eval(monkeypatch, f"checkpoint={tmp_path}", "eval.video=true", "eval.episodes=3", "eval.num_envs=2",
               "eval.video_episodes=2", "device=cpu")
    videos = sorted((tmp_path / "eval").glob("*.mp4"))
    # 2 of the 3 episodes, one per env (env 0 runs 2 episodes, env 1 one): the first of each env.
    assert [v.name for v in videos] == ["last-step128-env0-episode-0.mp4", "last-step128-env1-episode-0.mp4"]
    frames = [imageio_ffmpeg.count_frames_and_secs(str(v))[0] for v in videos]
    lengths = json.loads((tmp_path / "checkpoints" / "last.eval.json").read_text())["lengths"]
    # One frame after the reset and one per step: each video is one whole evaluated episode.
    assert all(f - 1 in lengths for f in frames), (frames, lengths)


IMPORT_TIME_RENDERER = """
import os

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

BACKEND = os.environ.get("MUJOCO_GL")  # read when imported, as dm_control does


class ImportTimeRenderer(CartPoleEnv):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def render(self):
        if not BACKEND:
            raise RuntimeError("an OpenGL platform library has not been loaded into this process")
        return np.zeros((32, 32, 3), np.uint8)


gym.register(id="ImportTimeRenderer-v0", entry_point=ImportTimeRenderer, max_episode_steps=20)
"""


def test_eval_video_sets_the_renderer_before_the_envs_modules_are_imported(
    train_run, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("moviepy", reason="eval.video needs moviepy: pip install -e '.[video]'")
    from rlrun.envs.imports import SHARED

    (tmp_path / "glmod.py").write_text(IMPORT_TIME_RENDERER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(SHARED, "{}")
    run_dir = tmp_path / "run"
    train_run(["env=glmod:ImportTimeRenderer-v0", "algo.num_steps=32", "total_timesteps=64",
               *TINY_EVAL], run_dir)
    for name, value in (("DISPLAY", None), ("MUJOCO_GL", None), ("SDL_VIDEODRIVER", "x")):
        monkeypatch.setenv(name, "")  # restored after the test, whatever rlrun-eval sets
        monkeypatch.delenv(name)
    try:
        for backend in (None, ""):  # rlrun-eval in a new shell: the module is imported afresh
            sys.modules.pop("glmod", None)
            gym.registry.pop("ImportTimeRenderer-v0", None)
            if backend is not None:  # set by hand to a renderer that fails: one line
                monkeypatch.setenv("MUJOCO_GL", backend)
                with pytest.raises(SystemExit) as exited:
                    rlrun_eval(monkeypatch, run_dir, "eval.video=true", "eval.episodes=1",
                               "eval.num_envs=1")
                assert exited.value.code == 2
                assert capsys.readouterr().err.strip() == (
                    "rlrun: env glmod:ImportTimeRenderer-v0 cannot render rgb_array frames for "
                    "eval.video=true: an OpenGL platform library has not been loaded into this "
                    "process (MuJoCo without a display renders with MUJOCO_GL=egl or "
                    "MUJOCO_GL=osmesa)")
            else:
                rlrun_eval(monkeypatch, run_dir, "eval.video=true", "eval.episodes=1",
                           "eval.num_envs=1")
                assert [video.name for video in (run_dir / "eval").glob("*.mp4")] == [
                    "last-step64-env0-episode-0.mp4"]
    finally:
        sys.modules.pop("glmod", None)
        gym.registry.pop("ImportTimeRenderer-v0", None)


@pytest.mark.parametrize(
    "env, extra",
    [
        ("CartPole-v1", ["algo.num_steps=32", "total_timesteps=128"]),
        ("Pendulum-v1", ["algo.num_steps=64", "total_timesteps=256", "env.normalize_obs=true"]),
    ],
)
def test_torchscript_export_acts_like_the_checkpoint(train_run, tmp_path, monkeypatch, env, extra):
    train_run([f"env={env}", *TINY_EVAL, *extra], tmp_path)
    rlrun_eval(monkeypatch, f"checkpoint={tmp_path}", "eval.export=torchscript", "eval.episodes=1",
               "eval.num_envs=1", "device=cpu")
    path = tmp_path / "checkpoints" / "last.policy.pt"
    extra_files = {"rlrun.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        exported = torch.jit.load(str(path), _extra_files=extra_files)
    assert json.loads(extra_files["rlrun.json"])["env"] == env
    policy, normalizer, gym_env = checkpoint_policy(tmp_path)
    gym_env.observation_space.seed(123)
    for batch in (1, 7):
        obs = np.stack([gym_env.observation_space.sample() for _ in range(batch)])
        inputs = normalizer(obs, update=False) if normalizer else obs
        with torch.no_grad():
            expected = policy.act(torch.as_tensor(inputs), deterministic=True)
            actions = exported(torch.as_tensor(obs))
        if isinstance(gym_env.action_space, gym.spaces.Box):
            low, high = torch.as_tensor(gym_env.action_space.low), torch.as_tensor(gym_env.action_space.high)
            torch.testing.assert_close(actions, torch.minimum(torch.maximum(expected, low), high))
        else:
            assert torch.equal(actions, expected)
    if normalizer is not None:  # the normalisation is in the file: raw inputs give other actions
        with torch.no_grad():
            assert not torch.allclose(policy.act(torch.as_tensor(obs), deterministic=True), expected)


def test_onnx_export_acts_like_the_checkpoint(train_run, tmp_path, monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime", reason="eval.export=onnx needs pip install -e '.[export]'")
    pytest.importorskip("onnxscript", reason="eval.export=onnx needs pip install -e '.[export]'")
    train_run(["env=Pendulum-v1", "algo.num_steps=64", "total_timesteps=256", "env.normalize_obs=true", *TINY_EVAL],
              tmp_path)
    rlrun_eval(monkeypatch, f"checkpoint={tmp_path}", "eval.export=onnx", "eval.episodes=1", "eval.num_envs=1",
               "device=cpu")
    session = onnxruntime.InferenceSession(str(tmp_path / "checkpoints" / "last.policy.onnx"))
    policy, normalizer, gym_env = checkpoint_policy(tmp_path)
    gym_env.observation_space.seed(5)
    obs = np.stack([gym_env.observation_space.sample() for _ in range(9)])
    with torch.no_grad():
        expected = policy.act(torch.as_tensor(normalizer(obs, update=False)), deterministic=True).numpy()
    np.testing.assert_allclose(session.run(None, {"obs": obs})[0], np.clip(expected, -2.0, 2.0), atol=1e-5)


class Amplifier(torch.nn.Module):
    """A stand-in policy: act(obs) = 100 obs, far outside the action bounds."""

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return 100.0 * obs


def test_exported_policy_normalises_clips_and_bounds_by_hand():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(np.array([-2.0, -1.0], np.float32), np.array([2.0, 1.0], np.float32))
    normalizer = ObsNormalizer((2,), clip=3.0, epsilon=0.0)
    normalizer.rms.mean, normalizer.rms.var = np.array([1.0, -1.0]), np.array([4.0, 0.25])
    module = ExportedPolicy(Amplifier(), obs_space, action_space, normalizer)
    obs = torch.tensor([[1.0, -1.0], [1.02, -1.005], [100.0, -100.0]])
    # (obs - mean) / std: [0, 0], [0.01, -0.01], [49.5 -> clip 3, -198 -> clip -3]; x100; clip to bounds.
    expected = torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, -1.0]])
    torch.testing.assert_close(module(obs), expected)
