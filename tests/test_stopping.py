"""Stopping rules: `stop.eval_return` and `stop.patience` end training at an evaluation, which is
the run's final one (not run twice); the reason is kept in the result and the checkpoint, and a
stopped run is finished for `resume=` until a `stop.*` key or the budget changes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlrun.cli.train_command import _train_run
from rlrun.run.checkpoint_files import load_checkpoint
from rlrun.run.facade import Launch, Run, finished_result

SMALL = ["logger.console=false", "eval.episodes=2", "eval.num_envs=2"]
CARTPOLE_FLOOR = 8
"""The shortest CartPole-v1 episode lasts 8 steps (return 8) whatever the policy does (checked
over seeds 0-199 with either action held), so every seed reaches this target at its first
evaluation."""
FAMILIES = {
    "ppo": ["algo=ppo", "algo.num_steps=64", "eval.every_steps=512", "total_timesteps=4096"],
    "dqn": ["algo=dqn", "algo.learning_starts=200", "eval.every_steps=400", "total_timesteps=4000"],
    "cem": ["algo=cem", "algo.population=8", "eval.every_steps=600", "total_timesteps=12000"],
}
"""An on-policy, an off-policy and a zeroth-order algorithm on CartPole-v1, small."""


def eval_steps(run_dir: Path) -> list[int]:
    """The env steps of the evaluation events in metrics.jsonl."""
    lines = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    return [line["step"] for line in lines if "eval/return_mean" in line]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_eval_return_stops_at_the_first_evaluation(family, seed, train_run, tmp_path):
    args = FAMILIES[family]
    every = int(next(a for a in args if a.startswith("eval.every_steps=")).partition("=")[2])
    result = train_run([*args, *SMALL, f"seed={seed}", f"stop.eval_return={CARTPOLE_FLOOR}"], tmp_path)
    assert every <= result.global_step < 2 * every  # the first evaluation, far from the budget
    assert eval_steps(tmp_path) == [result.global_step]  # the final evaluation is that one
    assert result.stop_reason == (f"stopped at step {result.global_step}: eval return "
                                  f"{result.final_eval_return:.2f} reached stop.eval_return=8")
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["global_step"] == result.global_step
    assert state["stop_reason"] == result.stop_reason
    assert state["final_eval_return"] == result.final_eval_return
    assert f"Finished early ({result.stop_reason})" in (tmp_path / "train.log").read_text()


def test_patience_stops_after_evaluations_without_a_new_best(train_run, tmp_path):
    # No return can beat the best by 1e9: the first evaluation is the best, the next two are not.
    args = [*FAMILIES["ppo"], *SMALL, "stop.patience=2", "stop.min_delta=1e9"]
    result = train_run(args, tmp_path)
    assert eval_steps(tmp_path) == [512, 1024, 1536]
    assert result.global_step == 1536
    assert "no new best over" in result.stop_reason
    assert "stop.patience=2" in result.stop_reason
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["stop"] == {"evals_without_best": 2}


def test_patience_counts_on_when_it_is_raised(compose_cfg, train_run, tmp_path):
    args = [*FAMILIES["ppo"], *SMALL, "stop.min_delta=1e9"]
    train_run([*args, "stop.patience=1"], tmp_path)
    assert eval_steps(tmp_path) == [512, 1024]
    result = train_run([*args, "stop.patience=3"], tmp_path)  # two more without a new best
    assert eval_steps(tmp_path) == [512, 1024, 1536, 2048]
    assert "stop.patience=3" in result.stop_reason


def test_stopped_run_is_finished_until_a_stop_key_or_the_budget_changes(compose_cfg, train_run,
                                                                         tmp_path, capsys):
    args = [*FAMILIES["ppo"], *SMALL, f"stop.eval_return={CARTPOLE_FLOOR}"]
    stopped = train_run(args, tmp_path)
    done = finished_result(compose_cfg(args), tmp_path)
    assert done is not None and done.stop_reason == stopped.stop_reason
    assert _train_run(compose_cfg(args), tmp_path, Launch()) == stopped.final_eval_return
    printed = capsys.readouterr().out
    assert f"already finished at step {stopped.global_step} ({stopped.stop_reason}" in printed
    assert eval_steps(tmp_path) == [stopped.global_step]  # not trained again
    assert finished_result(compose_cfg([*args, "total_timesteps=8192"]), tmp_path) is None
    raised = [*args, "stop.eval_return=1e9"]
    assert finished_result(compose_cfg(raised), tmp_path) is None
    result = _train_run(compose_cfg(raised), tmp_path, Launch())  # continues to its budget
    assert eval_steps(tmp_path)[-1] == 4096
    assert result == load_checkpoint(tmp_path / "checkpoints" / "last.pt")["final_eval_return"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["stop_reason"] is None


def test_resume_of_a_stopped_run_composes_its_stop_keys(train_run, tmp_path):
    from omegaconf import OmegaConf

    from rlrun.cli.compose import compose_checked, job_node

    def resumed(*overrides: str):
        node = compose_checked("train", [f"resume.path={tmp_path}", *overrides])
        return OmegaConf.to_object(job_node(node))

    train_run([*FAMILIES["ppo"], *SMALL, f"stop.eval_return={CARTPOLE_FLOOR}"], tmp_path)
    assert finished_result(resumed(), tmp_path) is not None
    assert finished_result(resumed("stop.eval_return=400"), tmp_path) is None
    assert finished_result(resumed("stop.patience=5"), tmp_path) is None
    assert finished_result(resumed("total_timesteps=8192"), tmp_path) is None
    raised = resumed("stop.eval_return=1e9")
    assert raised.stop.eval_return == 1e9 and raised.algo.num_steps == 64  # the run's own config


class Reporter:
    """A search trial that would prune at every evaluation it may prune at."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, int, bool]] = []

    def report(self, value: float, step: int, may_prune: bool) -> bool:
        self.reports.append((value, step, may_prune))
        return may_prune


def test_the_stopping_evaluation_is_the_trials_value_not_a_pruning(compose_cfg, tmp_path):
    from rlrun.registry import algorithms

    cfg = compose_cfg([*FAMILIES["ppo"], *SMALL, f"stop.eval_return={CARTPOLE_FLOOR}"])
    reporter = Reporter()
    result = algorithms()["ppo"].train(cfg, Run(cfg, tmp_path, Launch(trial=reporter)))
    assert reporter.reports == [(result.final_eval_return, 512, False)]
    assert result.stop_reason is not None


@pytest.mark.parametrize("bad, key", [
    (["stop.patience=0"], "stop.patience=0 must be >= 1"),
    (["stop.min_delta=-1"], "stop.min_delta=-1.0 must be >= 0"),
    (["stop.eval_return=100", "eval.every_steps=0"], "set eval.every_steps="),
])
def test_bad_stop_values_are_refused(bad, key, compose_cfg):
    from rlrun.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(key)):
        compose_cfg(bad)
