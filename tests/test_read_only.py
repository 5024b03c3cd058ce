"""A run dir that cannot be written: evaluation still gives its result and says where it could
not write; resume, export and video are refused in one line that names the fix."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest
from conftest import rlrun_eval

from rlrun.cli import eval_command as cli_eval
from rlrun.cli import train_command as cli

TINY = ["total_timesteps=128", "algo.num_steps=32", "eval.episodes=2", "eval.num_envs=2",
        "eval.every_steps=0"]


@pytest.fixture
def read_only(monkeypatch):
    """Make a dir and everything under it read-only. chmod does so for a user; root, whom chmod
    does not stop, instead meets the errors of a read-only mount: `os.access(..., W_OK)` is
    false and opening a file under the dir for writing fails with EROFS."""
    chmodded: list[Path] = []

    def make(directory: Path) -> None:
        if os.geteuid() != 0:
            for path in [directory, *directory.rglob("*")]:
                path.chmod(0o555 if path.is_dir() else 0o444)
            chmodded.append(directory)
            return
        root = str(directory.resolve())
        real_access, real_open = os.access, io.open

        def under(path) -> bool:
            return isinstance(path, str | os.PathLike) and str(Path(path).resolve()).startswith(root)

        def access(path, mode, *args, **kwargs):
            return (not (mode & os.W_OK and under(path))) and real_access(path, mode, *args, **kwargs)

        def open_(file, mode="r", *args, **kwargs):
            if under(file) and set(mode) & set("wax+"):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(io, "open", open_)
        monkeypatch.setattr(builtins, "open", open_)

    yield make
    for directory in chmodded:
        for path in [directory, *directory.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_eval_of_a_read_only_run_dir_prints_its_result_and_where_it_could_not_write(
    train_run, tmp_path, monkeypatch, capsys, read_only
):
    train_run(TINY, tmp_path)
    before = sorted(tmp_path.rglob("*"))
    read_only(tmp_path)
    rlrun_eval(monkeypatch, tmp_path, "eval.episodes=2", "eval.num_envs=1", "device=cpu")
    out, err = capsys.readouterr()
    assert "return mean" in out and "│        2 │" in out  # the table, 2 episodes
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"could not write {tmp_path / 'checkpoints' / 'last.eval.json'}" in lines[0]
    assert sorted(tmp_path.rglob("*")) == before


def test_evaluate_checkpoint_returns_its_result_when_it_cannot_write(
    train_run, tmp_path, capsys, read_only
):
    from omegaconf import OmegaConf

    train_run(TINY, tmp_path)
    read_only(tmp_path)
    options = OmegaConf.to_object(cli.compose_checked(
        "eval", [f"checkpoint={tmp_path}", "eval.episodes=2", "eval.num_envs=1", "device=cpu"]))
    result = cli_eval._evaluate_checkpoint(options, [])
    assert result["episodes"] == 2 and len(result["returns"]) == 2
    assert "could not write" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["eval.export=torchscript", "eval.video=true"])
def test_eval_writing_a_file_into_a_read_only_run_dir_is_refused_before_evaluating(
    train_run, tmp_path, monkeypatch, capsys, read_only, option
):
    train_run(TINY, tmp_path)
    read_only(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        rlrun_eval(monkeypatch, tmp_path, option, "eval.episodes=1", "eval.num_envs=1", "device=cpu")
    out, err = capsys.readouterr()
    assert exit_.value.code == 2
    assert "return mean" not in out  # refused before the evaluation
    (line,) = err.strip().splitlines()
    assert option in line and f"cp -r {tmp_path} <new dir>" in line and "chmod -R u+w" in line


def test_resume_of_a_read_only_run_dir_says_it_exists_and_names_the_fix(
    train_run, tmp_path, capsys, read_only
):
    train_run(TINY, tmp_path)
    read_only(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.compose_checked("train", [f"resume.path={tmp_path}"], "hydra.run.dir")
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"the output dir {tmp_path} exists but is not writable" in line
    assert "cannot create" not in line
    assert f"cp -r {tmp_path} <new dir>" in line and "resume=<new dir>" in line
    assert f"chmod -R u+w {tmp_path}" in line
