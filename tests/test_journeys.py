"""Journeys a user takes through the installed command line, on non-default algorithms and envs.

Each test drives `rlrun`, `rlrun-eval` and `rlrun-report` as subprocesses and pastes back the
paths and commands they print: train, interrupt, `resume=<dir>` alone, extend, evaluate,
export, report; a sweep's job dirs; refused commands that leave a run dir byte for byte as it
was; an env without a time limit; two processes in one run dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ok, one_line_error, read_metrics, run_command

pytestmark = pytest.mark.slow  # each journey runs several commands in subprocesses

SAC_SMALL = [
    "algo=sac",
    "env=Pendulum-v1",
    "network.hidden_sizes=[32,32]",
    "algo.batch_size=32",
    "algo.learning_starts=300",
    "eval.episodes=2",
    "eval.num_envs=2",
    "logger.every_steps=500",
]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


def start(*args: str, cwd: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / args[0]
    return subprocess.Popen(
        [str(exe), *args[1:]],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def printed_run_dirs(stdout: str) -> list[str]:
    """The run dirs of the start panels, as printed (a sweep job's lines start with its label)."""
    return re.findall(r"^(?:\[job [^\]]*\])?\s*run dir\s+(\S.*?)\s*$", stdout, flags=re.MULTILINE)


def printed_command(stderr: str) -> list[str]:
    """The command between backticks in an interrupted run's last line."""
    (command,) = re.findall(r"`(rlrun [^`]+)`", stderr)
    return shlex.split(command)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def hashes(run_dir: Path) -> dict[str, str]:
    """Every file under a run dir and the SHA-256 of its bytes."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def steps(run_dir: Path, key: str) -> list[int]:
    rows = read_metrics(run_dir)
    return [row["step"] for row in rows if key in row]


def checkpoint_step(run_dir: Path) -> int:
    from rlrun.run.checkpoint_files import load_checkpoint

    return int(load_checkpoint(run_dir)["global_step"])


def test_sac_pendulum_interrupt_resume_extend_eval_export_report(tmp_path):
    proc = start("rlrun", *SAC_SMALL, "total_timesteps=3000", "eval.every_steps=1000", cwd=tmp_path)
    train_logs = lambda: list(tmp_path.glob("outputs/sac/Pendulum-v1/*/train.log"))
    wait_for(lambda: train_logs() and "step 1,000/3,000" in train_logs()[0].read_text())
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stdout + stderr
    (run_dir,) = printed_run_dirs(stdout)
    assert Path(run_dir).is_absolute() or (tmp_path / run_dir).is_dir()
    run_dir = Path(tmp_path / run_dir)
    stopped = checkpoint_step(run_dir)
    assert 0 < stopped < 3000
    command = printed_command(stderr)
    assert command == ["rlrun", f"resume={run_dir}"] or command[:2] == [
        "rlrun",
        f"resume={run_dir}",
    ]

    resumed = ok(run_command(*command, cwd=tmp_path))  # resume=<dir> alone continues with the stored config
    assert f"Resuming from {run_dir / 'checkpoints' / 'last.pt'} at step {stopped}" in resumed
    assert checkpoint_step(run_dir) == 3000
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "id: Pendulum-v1" in config and "name: sac" in config and "- 32" in config
    ok(run_command("rlrun", f"resume={run_dir}", "total_timesteps=3500", cwd=tmp_path))  # extend
    assert checkpoint_step(run_dir) == 3500
    logged = steps(run_dir, "train/updates")
    assert logged == sorted(set(logged)) and logged[-1] == 3500
    evals = steps(run_dir, "eval/return_mean")
    assert evals == sorted(set(evals)) and evals[-1] == 3500  # one final evaluation per step

    shown = ok(run_command("rlrun-eval", str(run_dir), "eval.episodes=2", cwd=tmp_path))
    assert "return mean" in shown and (run_dir / "checkpoints" / "last.eval.json").is_file()
    ok(
        run_command(
            "rlrun-eval",
            str(run_dir / "checkpoints" / "best.pt"),
            "eval.export=onnx",
            "eval.episodes=1",
            cwd=tmp_path,
        )
    )
    assert (run_dir / "checkpoints" / "best.policy.onnx").is_file()
    ok(run_command("rlrun-report", str(run_dir), cwd=tmp_path))
    report = (run_dir / "report" / "report.md").read_text()
    assert "sac" in report and "Pendulum-v1" in report


def test_ppo_hopper_exports_float32_inputs(tmp_path):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime

    run_dir = tmp_path / "hopper"
    ok(
        run_command(
            "rlrun",
            "env=Hopper-v4",
            "total_timesteps=1024",
            "algo.num_steps=512",
            "eval.episodes=1",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
        )
    )
    ok(run_command("rlrun-eval", str(run_dir), "eval.export=onnx", "eval.episodes=1", cwd=tmp_path))
    session = onnxruntime.InferenceSession(str(run_dir / "checkpoints" / "last.policy.onnx"))
    (given,) = session.get_inputs()
    assert given.type == "tensor(float)" and given.shape[1:] == [11]
    actions = session.run(None, {"obs": np.zeros((3, 11), np.float32)})[0]
    assert actions.shape == (3, 3) and np.all(np.abs(actions) <= 1.0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A two-job A2C sweep on Acrobot: its dir, stdout and the printed job dirs."""
    cwd = tmp_path_factory.mktemp("sweep")
    stdout = ok(
        run_command(
            "rlrun",
            "-m",
            "algo=a2c",
            "env=Acrobot-v1",
            "seed=0,1",
            "total_timesteps=1024",
            "eval.episodes=2",
            "hydra.sweep.dir=sweep",
            cwd=cwd,
        )
    )
    jobs = printed_run_dirs(stdout)
    assert len(jobs) == 2 and all("," in job and "=" in job for job in jobs)
    return cwd, jobs


def test_a_sweep_job_is_evaluated_and_resumed_by_its_printed_path(sweep):
    cwd, jobs = sweep
    job = Path(jobs[1])
    assert "seed=1" in job.name
    ok(run_command("rlrun-eval", str(job), "eval.episodes=2", cwd=cwd))
    ok(run_command("rlrun-eval", f"checkpoint={job}/checkpoints/last.pt", "eval.episodes=2", cwd=cwd))
    out = ok(run_command("rlrun", f"resume={job}", "total_timesteps=2048", cwd=cwd))
    assert "Resuming from" in out
    config = (job / ".hydra" / "config.yaml").read_text()
    assert "id: Acrobot-v1" in config and "seed: 1" in config
    assert (
        "- seed=1" in (job / ".hydra" / "overrides.yaml").read_text()
    )  # rlrun-report keeps its labels
    ok(run_command("rlrun-report", str(cwd / "sweep"), cwd=cwd))
    assert "Acrobot-v1" in (cwd / "sweep" / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["algo.gamma=0.9"], "algo.gamma: 0.99 -> 0.9"),
        (["algo=ppo"], "written by algo=a2c"),
        (["env=CartPole-v1"], "env.id: Acrobot-v1 -> CartPole-v1"),
        (["algo.lrr=1"], "did you mean optimizer.lr"),
    ],
)
def test_a_refused_resume_leaves_every_file_as_it_was(sweep, args, fragment):
    cwd, jobs = sweep
    job = Path(jobs[0])
    before = hashes(job)
    assert fragment in one_line_error(run_command("rlrun", f"resume={job}", *args, cwd=cwd))
    assert hashes(job) == before


def test_a_refused_new_run_leaves_no_dir(tmp_path):
    line = one_line_error(
        run_command(
            "rlrun",
            "algo=dqn",
            "algo.buffer_size=100000000000",
            "total_timesteps=100",
            cwd=tmp_path,
        )
    )
    assert "algo.buffer_size" in line and "GB" in line
    assert not (tmp_path / "outputs").exists()


def test_an_env_without_time_limit_finishes_and_stops_on_sigterm_within_seconds(tmp_path):
    out = ok(
        run_command(
            "rlrun",
            "algo=dqn",
            "env=CliffWalking-v1",
            "total_timesteps=1500",
            "algo.learning_starts=500",
            "eval.episodes=2",
            "eval.num_envs=1",
            f"hydra.run.dir={tmp_path / 'a'}",
            cwd=tmp_path,
        )
    )
    assert "Finished at step 1500" in out
    assert re.search(r"^\s+preset\s+none$", out, flags=re.MULTILINE)  # there is no dqn_other.yaml
    lengths = [
        json.loads(line).get("eval/ep_len_mean")
        for line in (tmp_path / "a" / "metrics.jsonl").open()
    ]
    assert max(length for length in lengths if length is not None) <= 1000  # capped, a truncation

    run_dir = (
        tmp_path / "b"
    )  # an evaluation of endless episodes (capped far away), stopped by SIGTERM
    proc = start(
        "rlrun",
        "env=CliffWalking-v1",
        "total_timesteps=1000000",
        "eval.every_steps=512",
        "env.unlimited_max_episode_steps=10000000",
        "eval.episodes=50",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    wait_for(lambda: (run_dir / "train.log").is_file())
    time.sleep(3.0)  # the first iteration (512 steps) is done, the evaluation runs
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert time.time() - sent < 10
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    assert checkpoint_step(run_dir) == 512


def test_two_processes_in_one_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    args = ["rlrun", *SAC_SMALL, "total_timesteps=1000000", f"hydra.run.dir={run_dir}"]
    first = start(*args, cwd=tmp_path)
    wait_for(lambda: (run_dir / "train.log").is_file())
    line = one_line_error(run_command(*args, cwd=tmp_path))
    assert f"in use by another rlrun process (pid {first.pid} on " in line
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)  # dies holding the lock
    first.communicate(timeout=30)
    out = ok(run_command(*args[:-2], "total_timesteps=400", f"hydra.run.dir={run_dir}", cwd=tmp_path))
    assert f"from a process that is gone (pid {first.pid} " in out
    assert not (run_dir / ".lock").exists()


def test_a_second_signal_stops_at_once_without_a_traceback(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(
        "rlrun",
        "algo=a2c",
        "env=Acrobot-v1",
        "total_timesteps=10000000",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    wait_for(lambda: (run_dir / "train.log").is_file())
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in stderr, stderr
    assert "second SIGINT: stopped at once" in stderr or "Continue with" in stderr
    assert not list(run_dir.glob("checkpoints/.*.tmp"))
