"""The Python API (`rlrun.train`, `rlrun.load`): the same runs as the command line, in-process,
from any thread, with mistakes raised as the command line's one line and the process left as it
was found."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import assert_same, read_metrics, run_command

import rlrun
from rlrun.run.checkpoint_files import load_checkpoint

README = Path(__file__).resolve().parent.parent / "README.md"
COMMON = ["algo=ppo", "env=CartPole-v1", "total_timesteps=1024", "algo.num_steps=64",
          "deterministic=true", "eval.episodes=2", "eval.num_envs=2", "logger.console=false"]
"""A short deterministic run, as the command line and `rlrun.train` both take it."""
AS_KEYWORDS = {"algo": "ppo", "env": "CartPole-v1", "total_timesteps": 1024,
               "algo.num_steps": 64, "deterministic": True, "eval": {"episodes": 2, "num_envs": 2},
               "logger": {"console": False}}
"""COMMON as keyword arguments (a section as a dict, a dotted key through **)."""
TINY = ["algo=ppo", "algo.num_steps=32", "env.num_envs=1", "eval.episodes=2", "eval.num_envs=1",
        "logger.console=false"]


def behaviour(run_dir: Path) -> list[dict]:
    """The train/, rollout/ and eval/ metric rows of a run (not its timings)."""
    rows = read_metrics(run_dir)
    return [{key: value for key, value in row.items() if key.startswith(("step", "train/",
                                                                        "rollout/", "eval/"))}
            for row in rows]


@pytest.fixture(scope="module")
def command_line_run(tmp_path_factory) -> Path:
    """COMMON trained by the `rlrun` command in its own process."""
    cwd = tmp_path_factory.mktemp("cli")
    done = run_command("rlrun", *COMMON, "hydra.run.dir=run", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "run"


class Corridor(gym.Env):
    """Step right (action 1) along `length` cells to the end; -0.1 per step, +1 at the end."""

    def __init__(self, length: int = 6) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        done = self.position >= self.length
        obs = np.array([self.position / self.length], np.float32)
        return obs, 1.0 if done else -0.1, done, False, {}


@pytest.mark.slow
def test_train_equals_the_command_line_twice_in_process_and_from_a_thread(command_line_run, tmp_path):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlrun.cli.compose import CONF_DIR

    torch.set_num_threads(3)
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()

    first = rlrun.train([*COMMON, f"hydra.run.dir={tmp_path / 'first'}"])
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):  # a user's own Hydra
        second = rlrun.train(**AS_KEYWORDS, hydra={"run": {"dir": str(tmp_path / "second")}})
        assert GlobalHydra.instance().is_initialized()
    assert not GlobalHydra.instance().is_initialized()
    threaded = []
    thread = threading.Thread(target=lambda: threaded.append(
        rlrun.train(COMMON, **{"hydra.run.dir": str(tmp_path / "thread")})))
    thread.start()
    thread.join()

    assert torch.get_num_threads() == 3
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    expected = load_checkpoint(command_line_run)
    for result in (first, second, *threaded):
        assert result.stopped_because == "budget"
        assert result.final_eval == expected["final_eval_return"]
        assert result.global_step == expected["global_step"] == 1024
        assert behaviour(result.run_dir) == behaviour(command_line_run)
        checkpoint = load_checkpoint(result.checkpoint)
        assert_same(checkpoint["modules"], expected["modules"])
        assert_same(checkpoint["rng"], expected["rng"])
        for name in ("config.yaml", "overrides.yaml"):
            assert (result.run_dir / ".hydra" / name).read_text() == (
                command_line_run / ".hydra" / name).read_text()
    assert len(threaded) == 1

    policy = rlrun.load(first.run_dir)
    assert policy.evaluate(episodes=2).mean == first.final_eval
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert policy.act(obs) in (0, 1)
    assert policy.act(np.stack([obs, obs])).shape == (2,)


@pytest.mark.parametrize("typed", ["algo.clip_cof=0.3", "total_timesteps=-5"])
def test_a_mistake_raises_the_command_lines_line(typed, tmp_path, monkeypatch):
    done = run_command("rlrun", typed, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    monkeypatch.chdir(tmp_path)
    key, _, value = typed.partition("=")
    with pytest.raises(rlrun.ConfigError) as raised:
        rlrun.train(**{key: float(value)})
    assert f"rlrun: {raised.value}" == line
    assert not (tmp_path / "outputs").exists()


def test_a_second_call_while_one_runs_is_refused(tmp_path):
    entered, go_on = threading.Event(), threading.Event()

    def slow_corridor() -> Corridor:
        entered.set()
        go_on.wait(60)
        return Corridor()

    results = []
    thread = threading.Thread(target=lambda: results.append(rlrun.train(
        TINY, env=slow_corridor, total_timesteps=32, hydra={"run": {"dir": str(tmp_path / "run")}})))
    thread.start()
    try:
        assert entered.wait(60)
        with pytest.raises(rlrun.RunInProgressError, match="one run at a time"):
            rlrun.train(TINY, hydra={"run": {"dir": str(tmp_path / "other")}})
    finally:
        go_on.set()
        thread.join()
    assert results[0].stopped_because == "budget"
    assert not (tmp_path / "other").exists()


def test_an_env_built_in_python_continues_and_loads_from_python_only(command_line_run, tmp_path):
    run_dir = tmp_path / "corridor"
    result = rlrun.train(TINY, env=Corridor, total_timesteps=64, hydra={"run": {"dir": str(run_dir)}},
                         **{"env.kwargs.length": 4, "env.max_episode_steps": 50})
    assert result.run_dir == run_dir and result.config.env.id == "Corridor"
    assert load_checkpoint(result.checkpoint)["python_env"].endswith(":Corridor")
    assert "Corridor" not in gym.registry

    refused = run_command("rlrun", f"resume={run_dir}", cwd=tmp_path)
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"rlrun: {result.checkpoint} was trained on an env made in Python by ")
    assert line.endswith(f"rlrun.train(resume='{run_dir}', env=Corridor)")
    with pytest.raises(rlrun.CheckpointError, match=re.escape(f"rlrun.load('{run_dir}', env=Corridor)")):
        rlrun.load(run_dir)  # rlrun-eval's check too
    with pytest.raises(rlrun.CheckpointError, match="drop env="):
        rlrun.train(resume=command_line_run, env=Corridor)

    policy = rlrun.load(run_dir, env=Corridor)
    assert policy.evaluate(episodes=2).mean == result.final_eval
    assert policy.act(np.array([0.5], np.float32)) in (0, 1)
    more = rlrun.train(resume=run_dir, env=Corridor, total_timesteps=128)
    assert (more.run_dir, more.global_step, more.stopped_because) == (run_dir, 128, "budget")
    assert f"Resuming from {result.checkpoint} at step 64" in (run_dir / "train.log").read_text()


def test_ctrl_c_in_the_main_thread_ends_with_an_interrupted_result(tmp_path, monkeypatch):
    from rlrun.run.facade import Run

    log = Run.log

    def log_then_interrupt(self, metrics, step):
        log(self, metrics, step)
        if not self.should_stop:
            signal.raise_signal(signal.SIGINT)  # as a notebook's interrupt

    monkeypatch.setattr(Run, "log", log_then_interrupt)
    before = signal.getsignal(signal.SIGINT)
    result = rlrun.train(TINY, total_timesteps=100_000, hydra={"run": {"dir": str(tmp_path)}})
    assert (result.stopped_because, result.final_eval) == ("interrupted", None)
    assert result.message.startswith(f"SIGINT at step {result.global_step}: checkpoint saved")
    assert 0 < load_checkpoint(result.checkpoint)["global_step"] == result.global_step < 100_000
    assert signal.getsignal(signal.SIGINT) is before


def test_keyword_values_become_the_overrides_a_shell_would_type():
    from rlrun.api import _command_line

    lines = _command_line(["algo=sac"], {
        "eval": {"episodes": np.int64(2), "deterministic": False},
        "network": {"hidden_sizes": [32, 32]},
        "env.kwargs": {"name": "a,b", "size": "8", "ratio": 0.5},
        "env.wrappers": [{"_target_": "gymnasium.wrappers.FlattenObservation"}],
        "resume": None,
    })
    assert lines == ["algo=sac", "eval.episodes=2", "eval.deterministic=false",
                     "network.hidden_sizes=[32,32]", "env.kwargs.name='a,b'",
                     "env.kwargs.size='8'", "env.kwargs.ratio=0.5",
                     "env.wrappers=[{_target_:gymnasium.wrappers.FlattenObservation}]",
                     "resume=null"]


@pytest.mark.parametrize(("arguments", "refusal"), [
    (["algo=ppo,a2c"], "algo=ppo,a2c is a sweep, and rlrun.train trains one run"),
    (["-m", "algo=ppo"], "-m is a flag of the rlrun command"),
    ([], "env=<gymnasium.envs.classic_control.cartpole.CartPoleEnv"),
])
def test_what_is_not_one_run_is_refused_in_one_line(arguments, refusal, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {} if arguments else {"env": gym.make("CartPole-v1").unwrapped}  # an env, not a maker
    with pytest.raises(rlrun.ConfigError) as raised:
        rlrun.train(arguments, **options)
    assert str(raised.value).startswith(refusal) and "\n" not in str(raised.value)


def test_import_rlrun_loads_neither_torch_nor_hydra():
    code = ("import sys, rlrun; print(sorted({'torch', 'hydra'} & set(sys.modules)));"
            "print(sorted(name for name in rlrun.__all__ if getattr(rlrun, name, None) is None))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "[]"]


def test_the_readme_examples_run(tmp_path, monkeypatch):
    """The README's Python blocks of "From Python", with budgets 100 times smaller."""
    section = README.read_text().partition("## From Python")[2].partition("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        code = re.sub(r"total_timesteps=([\d_]+)",
                      lambda match: f"total_timesteps={int(match.group(1)) // 100}", block)
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our README
    assert sorted(path.name for path in (tmp_path / "outputs" / "lr_scan").iterdir()) == [
        "lr=0.00025", "lr=0.001"]


class Evaluations:
    """A callback made in Python: records the steps of the evaluations it is called for."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_evaluation(self, step, metrics) -> None:
        self.steps.append(step)


def test_callback_objects_and_a_config_dir_from_python(tmp_path):
    """`callbacks=` takes objects made in Python beside the config's; `config_dir=` adds the
    user's configs as `--config-dir` does (their preset wins over the shipped one), for this call
    only."""
    conf = tmp_path / "conf" / "preset"
    conf.mkdir(parents=True)
    (conf / "ppo_classic.yaml").write_text("# @package _global_\nalgo:\n  ent_coef: 0.123\n")
    seen = Evaluations()
    run = rlrun.train(TINY, total_timesteps=64, callbacks=[seen, "rlrun.callbacks.Echo"],
                      config_dir=tmp_path / "conf", hydra={"run": {"dir": str(tmp_path / "a")}},
                      **{"eval.every_steps": 32})
    assert seen.steps == [32, 64] and run.config.algo.ent_coef == 0.123
    assert list(run.config.callbacks) == ["rlrun.callbacks.Echo"]
    again = rlrun.train(TINY, total_timesteps=32, hydra={"run": {"dir": str(tmp_path / "b")}})
    assert again.config.algo.ent_coef == 0.01  # the shipped preset: the dir was for one call
