"""Messages for inputs that look right but are not: each names what the user typed and the fix."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import rlrun

from rlrun.cli import train_command as cli
from rlrun.run.checkpoint_files import CheckpointError, load_checkpoint, resolve_checkpoint
from rlrun.run.resume import _refusal


def refusal_line(capsys, overrides, argv=None, monkeypatch=None):
    """The one stderr line of compose_checked's refusal of `overrides` (exit 2)."""
    if argv is not None:
        monkeypatch.setattr(sys, "argv", ["rlrun", *argv])
    cli._setup()
    with pytest.raises(SystemExit) as stop:
        cli.compose_checked("train", overrides, "hydra.run.dir")
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlrun: ")
    return lines[0]


def test_a_list_without_brackets_is_shown_in_brackets(capsys, monkeypatch):
    # `256,256` is a sweep: its first value, an int, is what is composed
    line = refusal_line(capsys, ["network.hidden_sizes=256"], ["network.hidden_sizes=256,256"],
                        monkeypatch)
    assert "write network.hidden_sizes=[256,256]" in line and "ListConfig" not in line


def test_a_checkpoint_given_to_rlrun_points_to_rlrun_eval_and_resume(capsys):
    line = refusal_line(capsys, ["checkpoint='/tmp/x.pt'"])
    assert "rlrun-eval /tmp/x.pt" in line and "resume=/tmp/x.pt" in line
    assert "CheckpointConfig" not in line
    line = refusal_line(capsys, ["eval=3"])  # any other section given a value
    assert "eval is a section" in line and "eval.<key>=3" in line


def test_hydra_optuna_sweepers_seed_key_points_to_rlruns(capsys):
    pytest.importorskip("optuna")
    line = refusal_line(capsys, ["hparams_search=ppo_optuna", "hydra.sweeper.sampler.seed=0"])
    assert "hydra.sweeper.sampler_seed=0" in line and "dict" not in line


def test_resume_refusal_names_the_typed_keys_first_and_whole():
    presets = ["algo.ent_coef: 0.0 -> 0.01", "algo.num_epochs: 10 -> 4",
               "optimizer.lr: 0.0003 -> 0.00025", "algo.gamma: 0.99 -> 0.999",
               "algo.gae_lambda: 0.95 -> 0.9", "algo.clip_coef: 0.2 -> 0.1"]
    env = ["env.family: mujoco -> classic", "env.id: Hopper-v4 -> CartPole-v1",
           "env.num_envs: 1 -> 4"]
    line = _refusal("last.pt", sorted(presets + env), ["env=CartPole-v1", "device=cpu"])
    assert line.startswith("last.pt was trained with another config: env=CartPole-v1 changes "
                           "env.id: Hopper-v4 -> CartPole-v1; env.family")
    assert all(change in line for change in env)
    assert "6 more value(s) change" in line and "and 2 more" in line
    assert "drop env=CartPole-v1 to continue" in line and "device" not in line
    untyped = _refusal("last.pt", sorted(presets), [])  # e.g. the Python API: no command line
    assert "(algo.clip_coef: 0.2 -> 0.1; " in untyped and "and 2 more): drop those" in untyped


def test_a_checkpoints_dir_is_read_as_its_last_checkpoint(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, tmp_path / "run" / "checkpoints" / "last.pt")
    for given in ("run", "run/checkpoints", "run/checkpoints/last.pt"):
        assert resolve_checkpoint(tmp_path / given) == tmp_path / "run" / "checkpoints" / "last.pt"
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint at .*empty/checkpoints/last.pt;"):
        resolve_checkpoint(tmp_path / "empty" / "checkpoints")


@pytest.mark.parametrize("text", ["hello\n", '{"a": 1}\n', "some text\nmore\n", ""])
def test_a_text_file_is_not_a_torch_checkpoint(tmp_path, text):
    path = tmp_path / "x.pt"
    path.write_text(text)
    with pytest.raises(CheckpointError, match="is not a torch checkpoint file"):
        load_checkpoint(path)


@pytest.mark.slow
def test_a_refusal_during_set_up_prints_no_start_panel(tmp_path):
    result = rlrun("algo=ppo", "env=Pendulum-v1", "algo.num_minibatches=100000", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "algo.num_minibatches" in result.stderr
    assert "rlrun: training" not in result.stdout and "run dir" not in result.stdout


def test_side_file_writes_are_shown_once(tmp_path, capsys):
    from conftest import train_in_process

    overrides = ["algo=sac", "env=Pendulum-v1", "total_timesteps=300", "algo.learning_starts=100",
                 "checkpoint.every_steps=100", "eval.episodes=1", "eval.every_steps=0",
                 "torch_threads=1", "logger.console=true"]
    train_in_process(overrides, tmp_path / "run")
    printed = capsys.readouterr().out
    assert printed.count("Wrote replay state") == 1
    assert "over 1 episode; run dir" in printed  # eval.episodes=1
    assert (tmp_path / "run" / "train.log").read_text().count("Wrote replay state") >= 3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # HalfCheetah-v4 is not the newest
def test_mujoco_warnings_are_shown_once_per_process(capfd):
    pytest.importorskip("mujoco")
    import gymnasium as gym

    from rlrun.envs.factory import mujoco_warnings_once

    mujoco_warnings_once.cache_clear()  # a fresh record of the warnings shown (another test may
    mujoco_warnings_once()  # have built HalfCheetah in this process)
    for _ in range(3):
        gym.make("HalfCheetah-v4").close()
    assert capfd.readouterr().err.count("settotalmass") == 1
