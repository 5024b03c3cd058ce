"""Shared fixtures: compose configs in-process and run training in-process on tiny budgets."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)


def compose_train(overrides: list[str] | None = None, run_dir: Path | None = None):
    """The typed TrainConfig for these overrides (console off, as in tests)."""
    from rlrun.cli import train_command as cli

    cli._setup()
    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["logger.console=false", *(overrides or [])])
    return OmegaConf.to_object(cfg)


def train_in_process(overrides: list[str], run_dir: Path):
    """Compose, build a Run in `run_dir` and train; returns the TrainResult."""
    from rlrun.export.rebuild import load_policy
    from rlrun.registry import algorithms
    from rlrun.run.facade import Launch, Run

    cfg = compose_train(overrides)
    run = Run(cfg, run_dir, Launch(load_policy=load_policy,
                                   check_spaces=algorithms()[cfg.algo.name].check_spaces))
    try:
        return algorithms()[cfg.algo.name].train(cfg, run)
    except BaseException:
        run.close()
        raise


# ----- helpers the test modules import (`from conftest import ...`) ------------------------------
TINY_EVAL = ["eval.episodes=2", "eval.num_envs=2", "eval.every_steps=0"]
"""Overrides for a small final evaluation and none during training."""
TINY_RUN = ["algo.num_steps=32", *TINY_EVAL, "torch_threads=1"]
"""Overrides that make the default run (PPO on CartPole-v1) small, but for its total_timesteps."""
SMALL_RUN = ["total_timesteps=256", *TINY_RUN]
"""A small default run: 256 env steps."""


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run dir's metrics.jsonl, in order."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def col(values) -> torch.Tensor:
    """`values` as a float32 tensor of shape (len, 1): a rollout of one env."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)


def column(values) -> np.ndarray:
    """Scores of one task as rliable takes them: a float array of shape (runs, 1)."""
    return np.array(values, dtype=float).reshape(-1, 1)


def assert_same(a, b, path: str = "checkpoint") -> None:
    """`a` equals `b`: tensors and arrays bitwise, through dicts, named tuples, dataclasses, lists
    and tuples; the assertion names the `path` of the first difference."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif hasattr(a, "_fields") or dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        names = a._fields if hasattr(a, "_fields") else [f.name for f in dataclasses.fields(a)]
        for name in names:
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def run_command(*words, cwd: Path, timeout: float = 300,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A command line as a user types it (its first word is `rlrun`, `rlrun-eval` or
    `rlrun-report` of this venv) in a fresh process in `cwd`, output captured, with `env` added to
    this process's variables."""
    exe = Path(sys.executable).parent / words[0]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([str(exe), *map(str, words[1:])], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def rlrun(*args, cwd: Path, timeout: float = 300,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`rlrun ARGS` in a fresh process (see `run_command`)."""
    return run_command("rlrun", *args, cwd=cwd, timeout=timeout, env=env)


def ok(result: subprocess.CompletedProcess) -> str:
    """The stdout of a command that succeeded without a traceback."""
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess, exit_code: int = 2) -> str:
    """The one stderr line (`rlrun: ...`) of a command refused with `exit_code`, no traceback."""
    assert result.returncode == exit_code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rlrun: "), result.stderr
    return lines[0]


COMMAND_NAMES = {"train": "rlrun", "evaluate": "rlrun-eval", "report": "rlrun-report"}
"""The command name of each entry point of `rlrun.cli.train_command`."""


def rlrun_eval(monkeypatch, *args) -> None:
    """`rlrun-eval ARGS` in this process."""
    from rlrun.cli import train_command as cli

    monkeypatch.setattr(sys, "argv", ["rlrun-eval", *map(str, args)])
    cli.evaluate()


def refused(capsys, command, *args) -> str:
    """The one stderr line of the entry point `command` (`cli.train`, `cli.evaluate`) run in this
    process on `args` and refusing them with exit code 2, no traceback."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [COMMAND_NAMES[command.__name__], *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            command()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def atari_id():
    """An Atari id to compose with: ALE's when the atari extra is installed, else one registered
    for the test (composing reads only its entry point's module)."""
    import gymnasium as gym

    from rlrun.envs.config_source import registered_env_ids

    if "ALE/Pong-v5" in registered_env_ids():
        yield "ALE/Pong-v5"
        return
    gym.register("ALE/Pong-v5", entry_point="ale_py.env:AtariEnv")
    yield "ALE/Pong-v5"
    del gym.registry["ALE/Pong-v5"]


@pytest.fixture
def compose_cfg():
    return compose_train


@pytest.fixture
def train_run():
    return train_in_process


LEARNING_SEEDS = (0, 1, 2)
"""The seeds every learning test trains: its threshold must hold for each of them."""


def train_seeds(overrides: list[str], tmp_path: Path, seeds=LEARNING_SEEDS) -> dict[int, object]:
    """One run per seed (each in `tmp_path/seed<n>`); returns the TrainResults by seed.

    Learning thresholds are set below the lowest final return seen over seeds 0-4 at the test's
    budget, so that they test the algorithm, not a seed known to learn."""
    return {seed: train_in_process([*overrides, f"seed={seed}"], tmp_path / f"seed{seed}")
            for seed in seeds}


def final_returns(results: dict[int, object]) -> dict[int, float]:
    """The final evaluation return of each seed's run, rounded for readable failures."""
    return {seed: round(result.final_eval_return, 1) for seed, result in results.items()}


@pytest.fixture
def train_each_seed():
    return train_seeds


@pytest.fixture
def learn():
    """`learn(overrides, tmp_path, threshold)`: train seeds 0-2 and assert each seed's final
    evaluation return reaches `threshold`; returns the TrainResults by seed."""

    def learn(overrides: list[str], tmp_path: Path, threshold: float) -> dict[int, object]:
        results = train_seeds([*overrides, "eval.every_steps=0", "eval.episodes=10"], tmp_path)
        returns = final_returns(results)
        assert min(returns.values()) >= threshold, f"final eval returns by seed {returns}"
        return results

    return learn


@dataclass
class Expert:
    checkpoint: Path
    """The expert's checkpoint file (pass it as `algo.expert`)."""
    eval_return: float
    """Its evaluation return."""


@pytest.fixture(scope="session")
def cartpole_expert(tmp_path_factory):
    """A PPO CartPole-v1 expert, trained once per session (4-6 s): the best of six evaluations of
    a 60k-step run. The last checkpoint is not reliably an expert (seeds 0-5 ended at 483, 406,
    162, 435, 239, 463 on 2026-12-02), the best one is (500 on each of those seeds)."""
    run_dir = tmp_path_factory.mktemp("cartpole_expert")
    train_in_process(["total_timesteps=60000", "optimizer.lr=1e-3", "seed=1", "eval.every_steps=10000",
                      "eval.episodes=10"], run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    from rlrun.run.checkpoint_files import load_checkpoint

    return Expert(best, float(load_checkpoint(best)["best_eval_return"]))


@pytest.fixture(autouse=True)
def _env_modules_variable_restored(monkeypatch):
    """Each test starts and ends with the environment's RLRUN_ENV_MODULES (an in-process run that
    imports env modules sets it for its sweep workers; commands started later must not inherit
    it)."""
    monkeypatch.delenv("RLRUN_ENV_MODULES", raising=False)
