"""User callbacks (`callbacks=[{_target_: ...}]`): their hooks are called with the step, the
metrics and the run dir, in sweep jobs and on resume too; they cannot change what training
computes; a bad target is refused before the run starts, and a raising hook ends the run with
a checkpoint and one line naming it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from conftest import read_metrics

from rlrun.callbacks import CallbackError
from rlrun.cli.train_command import _train_run
from rlrun.config import ConfigError
from rlrun.run.checkpoint_files import load_checkpoint
from rlrun.run.facade import Launch

RLRUN = str(Path(sys.executable).parent / "rlrun")
HERE = Path(__file__).resolve().parent
PPO = ["algo=ppo", "algo.num_steps=64", "total_timesteps=2048", "eval.every_steps=512",
       "checkpoint.every_steps=512", "logger.console=false", "eval.episodes=2", "eval.num_envs=2"]
DQN = ["algo=dqn", "algo.learning_starts=200", "algo.buffer_size=2000", "total_timesteps=1200",
       "eval.every_steps=400", "checkpoint.every_steps=400", "logger.console=false",
       "eval.episodes=2", "eval.num_envs=2"]


class Meddler:
    """Draws from every global RNG, changes torch's thread count and mutates whatever it gets."""

    calls: ClassVar[Counter] = Counter()

    def _meddle(self, hook: str, *args: Any) -> None:
        Meddler.calls[hook] += 1
        random.random()
        np.random.rand(3)
        torch.rand(3)
        torch.set_num_threads(2)
        for arg in args:
            if isinstance(arg, dict):
                arg.clear()
                arg["eval/return_mean"] = -1.0

    def on_start(self, run_dir: Path, cfg: Any) -> None:
        self._meddle("on_start")
        cfg.seed = 99
        cfg.algo.gamma = 0.5

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self._meddle("on_log", metrics)

    def on_evaluation(self, step: int, metrics: dict[str, float]) -> None:
        self._meddle("on_evaluation", metrics)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._meddle("on_checkpoint")

    def on_end(self, step: int, result: dict[str, Any]) -> None:
        self._meddle("on_end", result)


class Recorder:
    """Appends `<hook> <step>` (on_start: `on_start <run dir>`) to the file `path`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, *words: Any) -> None:
        with self.path.open("a") as file:
            file.write(" ".join(map(str, words)) + "\n")

    def on_start(self, run_dir: Path, cfg: Any) -> None:
        self._write("on_start", run_dir)

    def on_evaluation(self, step: int, metrics: dict[str, float]) -> None:
        self._write("on_evaluation", step, metrics["eval/return_mean"])

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._write("on_checkpoint", step, path)

    def on_end(self, step: int, result: dict[str, Any]) -> None:
        self._write("on_end", step, result["status"], result["eval/return_mean"])


class Raiser:
    """Raises in the hook `hook`."""

    def __init__(self, hook: str) -> None:
        setattr(self, hook, self._raise)

    def _raise(self, *args: Any) -> None:
        raise ValueError("boom")

    def on_end(self, step: int, result: dict[str, Any]) -> None:
        pass


def metrics_without_time(run_dir: Path) -> list[dict[str, float]]:
    rows = read_metrics(run_dir)
    return [{key: value for key, value in row.items() if not key.startswith("time")} for row in rows]


def tensors(node: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint's nested state by its path."""
    if isinstance(node, torch.Tensor):
        return {prefix: node}
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list | tuple) else ()
    found: dict[str, torch.Tensor] = {}
    for key, value in items:
        found.update(tensors(value, f"{prefix}/{key}"))
    return found


@pytest.mark.parametrize("family", [PPO, DQN], ids=["ppo", "dqn"])
def test_a_meddling_callback_changes_nothing_training_computes(family, train_run, tmp_path):
    Meddler.calls.clear()
    common = [*family, "deterministic=true", "seed=3"]
    plain = train_run(common, tmp_path / "plain")
    meddled = train_run([*common, "callbacks=[test_callbacks.Meddler]"], tmp_path / "meddled")
    assert set(Meddler.calls) == {"on_start", "on_log", "on_evaluation", "on_checkpoint", "on_end"}
    assert meddled.final_eval_return == plain.final_eval_return
    assert metrics_without_time(tmp_path / "meddled") == metrics_without_time(tmp_path / "plain")
    states = [load_checkpoint(tmp_path / name / "checkpoints" / "last.pt") for name in ("plain", "meddled")]
    expected, got = (tensors({"modules": s["modules"], "rng": s["rng"]}) for s in states)
    assert expected.keys() == got.keys() and len(expected) > 10
    for key, tensor in expected.items():
        assert torch.equal(tensor, got[key]), key
    assert states[1]["rng"]["python"] == states[0]["rng"]["python"]
    assert torch.get_num_threads() == 1


def test_hooks_get_the_step_the_metrics_and_the_run_dir_also_on_resume(train_run, tmp_path):
    log = tmp_path / "hooks.txt"
    run_dir = tmp_path / "run"
    # the Meddler first: what it does to its copies never reaches the Recorder after it
    callbacks = f"callbacks=[test_callbacks.Meddler,{{_target_:test_callbacks.Recorder,path:'{log}'}}]"
    first = train_run([*PPO, "total_timesteps=1024", callbacks], run_dir)
    lines = log.read_text().splitlines()
    evaluations = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                   if "eval/return_mean" in line]
    assert lines == [
        f"on_start {run_dir}",
        f"on_evaluation 512 {evaluations[0]['eval/return_mean']}",
        f"on_checkpoint 512 {run_dir / 'checkpoints' / 'last.pt'}",
        f"on_evaluation 1024 {first.final_eval_return}",
        f"on_checkpoint 1024 {run_dir / 'checkpoints' / 'last.pt'}",
        f"on_checkpoint 1024 {run_dir / 'checkpoints' / 'last.pt'}",  # with the final result
        f"on_end 1024 finished {first.final_eval_return}",
    ]
    train_run([*PPO, "total_timesteps=1536", callbacks], run_dir)  # resumed: its callbacks again
    assert log.read_text().splitlines()[len(lines)] == f"on_start {run_dir}"
    assert log.read_text().splitlines()[-1].startswith("on_end 1536 finished ")


def test_resume_keeps_the_runs_callbacks(compose_cfg, tmp_path):
    from omegaconf import OmegaConf

    from rlrun.cli.compose import compose_checked, job_node

    args = [*PPO, "total_timesteps=512", "callbacks=[rlrun.callbacks.Echo]"]
    _train_run(compose_cfg(args), tmp_path, Launch(overrides=args))
    resumed = compose_checked("train", [f"resume.path={tmp_path}", "total_timesteps=1024"])
    assert OmegaConf.to_object(job_node(resumed)).callbacks == ["rlrun.callbacks.Echo"]
    dropped = compose_checked("train", [f"resume.path={tmp_path}", "callbacks=[]"])
    assert OmegaConf.to_object(job_node(dropped)).callbacks == []


@pytest.mark.slow
def test_callbacks_are_called_in_sweep_jobs(tmp_path):
    log = tmp_path / "hooks.txt"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [RLRUN, "-m", "seed=0,1", *PPO, "total_timesteps=512",
         f"callbacks=[{{_target_:test_callbacks.Recorder,path:'{log}'}}]",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        env=env, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("on_start")]
    assert [Path(start).parent for start in starts] == [tmp_path / "sweep"] * 2
    assert starts[0] != starts[1]
    ends = [line for line in log.read_text().splitlines() if line.startswith("on_end 512 finished")]
    assert len(ends) == 2


def test_a_raising_hook_ends_the_run_with_a_checkpoint_and_one_line(compose_cfg, tmp_path, capsys):
    callbacks = "callbacks=[{_target_:test_callbacks.Raiser,hook:on_evaluation}]"
    with pytest.raises(SystemExit) as exit_info:
        _train_run(compose_cfg([*PPO, callbacks]), tmp_path, Launch())
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("rlrun: callback test_callbacks.Raiser.on_evaluation raised ValueError: "
                            f"boom at step 512: checkpoint saved in {tmp_path}; fix it")
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["global_step"] == 512 and state["final_eval_return"] is None
    assert 'raise ValueError("boom")' in (tmp_path / "train.log").read_text()  # the traceback
    result = _train_run(compose_cfg([*PPO, "callbacks=[]"]), tmp_path, Launch())  # resumes
    assert result == load_checkpoint(tmp_path / "checkpoints" / "last.pt")["final_eval_return"]


def test_a_hook_raising_at_the_start_fails_before_training(train_run, tmp_path):
    with pytest.raises(CallbackError, match=r"Raiser\.on_start raised ValueError: boom before "
                                            r"training started; nothing changed"):
        train_run([*PPO, "callbacks=[{_target_:test_callbacks.Raiser,hook:on_start}]"], tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("entry, message", [
    ("nowhere_module.Thing", "callbacks[0]: cannot import 'nowhere_module'"),
    ("rlrun.callbacks.Ecko", "callbacks[0]: rlrun.callbacks has no 'Ecko'; did you mean rlrun.callbacks.Echo?"),
    ("collections.OrderedDict", "callbacks[0]: collections.OrderedDict has none of the hooks"),
    ("{prefix:a}", "callbacks[0]={'prefix': 'a'} names no callback"),
])
def test_a_bad_target_is_refused_in_one_line_before_the_run(entry, message, tmp_path, capsys):
    from rlrun.cli.compose import compose_checked

    with pytest.raises(SystemExit) as exit_info:
        compose_checked("train", [*PPO, f"callbacks=[{entry}]"], "hydra.run.dir")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error, error


def test_a_keyword_the_callback_does_not_take_is_refused(train_run, tmp_path):
    with pytest.raises(ConfigError, match=r"callbacks\[0\]\.prefx: rlrun\.callbacks\.Echo does not "
                                          r"take 'prefx' \(did you mean prefix\?\)"):
        train_run([*PPO, "callbacks=[{_target_:rlrun.callbacks.Echo,prefx:a}]"], tmp_path)
    assert list(tmp_path.iterdir()) == []
