"""The command line through subprocesses: defaults, help, bad input, Ctrl-C/SIGTERM and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_RUN, read_metrics, rlrun, run_command


def test_defaults_with_a_small_budget_write_the_run_dir(tmp_path):
    result = rlrun("total_timesteps=512", *TINY_RUN, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs" / "ppo" / "CartPole-v1").iterdir()
    assert run_dir.name.endswith("_s0")
    for name in (".hydra/config.yaml", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt", "train.log"):
        assert (run_dir / name).exists(), name
    rows = read_metrics(run_dir)
    assert all("step" in row for row in rows)
    assert any("eval/return_mean" in row for row in rows)
    assert "Finished at step 512" in result.stdout
    assert "conf/preset/ppo_classic.yaml" in result.stdout and run_dir.name in result.stdout  # start panel


def test_help_and_cfg(tmp_path):
    result = rlrun("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("algo", "env", "network", "optimizer", "logger", "total_timesteps", "resume"):
        assert word in result.stdout
    result = rlrun("--cfg", "job", "env=Hopper-v4", cwd=tmp_path)
    assert result.returncode == 0
    assert "num_steps: 2048" in result.stdout
    assert not (tmp_path / "outputs").exists()


LOADS_NO_TRAINING_CODE = r"""
import contextlib, io, json, sys
from rlrun.cli import eval_command, report_command, train_command

heavy = ("torch", "matplotlib", "rliable")
results = []
for name, *args in json.loads(sys.argv[1]):
    sys.argv, out = [name, *args], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            {"rlrun": train_command.train, "rlrun-eval": eval_command.evaluate,
             "rlrun-report": report_command.report}[name]()
        except SystemExit as stop:
            assert not stop.code, stop.code
    results.append({"stdout": out.getvalue(), "loaded": [m for m in heavy if m in sys.modules]})
print(json.dumps(results))
"""


def test_help_and_the_composed_config_load_no_torch(tmp_path):
    import importlib.util

    commands = [["rlrun", "--help"], ["rlrun", "--cfg", "job", "algo=sac", "env=Pendulum-v1"],
                ["rlrun-eval", "--help"], ["rlrun-report", "--help"]]
    if importlib.util.find_spec("Box2D") is not None:  # an image env: --cfg job shows the CNN
        commands.append(["rlrun", "--cfg", "job", "env=CarRacing-v3"])
    done = subprocess.run([sys.executable, "-c", LOADS_NO_TRAINING_CODE, json.dumps(commands)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for command, result in zip(commands, results, strict=True):
        assert result["loaded"] == [], (command, result["loaded"])
    assert "algorithm: a2c | bc" in results[0]["stdout"]
    assert "name: sac" in results[1]["stdout"] and "id: Pendulum-v1" in results[1]["stdout"]
    assert "eval.episodes" in results[2]["stdout"] and "--compare" in results[3]["stdout"]
    if len(results) == 5:
        assert "network:\n  name: cnn" in results[4]["stdout"]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["env=Hoper-v4"], "Hopper-v4"),
        (["algo=pppo"], "did you mean ppo"),
        (["total_timesteps=abc"], "total_timesteps=abc"),
        (["optimizer.lr=-1"], "optimizer.lr"),
        (["algo.no_such_key=1"], "algo.no_such_key"),
        (["network=transformer"], "unknown network"),
        (["resume=/nonexistent/run"], "no checkpoint"),
        (["env=CartPole-v1", "network=cnn"], "network=mlp"),
        (["device=cuda:0"] if not __import__("torch").cuda.is_available() else ["device=tpu"], "device"),
        (["algo.num_minibatches=1000", "algo.num_steps=8"], "num_minibatches"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, args, fragment):
    result = rlrun(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rlrun: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_sigterm_checkpoints_and_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["total_timesteps=10000000", *TINY_RUN, f"hydra.run.dir={run_dir}", "checkpoint.every_steps=1000000"]
    exe = Path(sys.executable).parent / "rlrun"
    proc = subprocess.Popen([str(exe), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "resume" in stderr and "Traceback" not in stderr
    from rlrun.run.checkpoint_files import load_checkpoint

    stopped_at = load_checkpoint(run_dir)["global_step"]
    assert stopped_at > 0
    result = rlrun(*args[1:], "total_timesteps=" + str(stopped_at + 256), f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Resuming from {run_dir / 'checkpoints' / 'last.pt'} at step {stopped_at}" in result.stdout
    assert load_checkpoint(run_dir)["global_step"] == stopped_at + 256


def test_eval_command_prints_a_table_and_writes_json(tmp_path):
    run_dir = tmp_path / "run"
    assert rlrun("total_timesteps=256", *TINY_RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    result = run_command("rlrun-eval", f"checkpoint={run_dir}", "eval.episodes=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "return mean" in result.stdout
    report = json.loads((run_dir / "checkpoints" / "last.eval.json").read_text())
    assert report["episodes"] == 3 and len(report["returns"]) == 3
    bad = run_command("rlrun-eval", f"checkpoint={tmp_path / 'nope.pt'}", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("rlrun: ") and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("command", "code"), [("rlrun", 141), ("rlrun-eval", 141),
                                               ("rlrun-report", 0)])  # argparse drops it itself
def test_help_into_a_closed_pipe_ends_quietly(command, code, tmp_path):
    # `rlrun --help | head -1`: the reader is gone before the help is written
    process = subprocess.Popen([str(Path(sys.executable).parent / command), "--help"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == code, stderr
    assert stderr == ""


def test_console_scripts_of_an_earlier_install_still_find_their_functions():
    # pip wrote `from rlrun.cli import train` into the scripts of installs made before the move
    from rlrun.cli import eval_command, evaluate, report, report_command, train, train_command

    assert (train, evaluate, report) == (train_command.train, eval_command.evaluate,
                                          report_command.report)
