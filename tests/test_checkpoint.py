"""Checkpoint files: round trip, atomic write, retention, safe loading, resume."""

import json
import os
import pickle

import pytest
import torch

from rlrun.run.checkpoint_files import (
    FORMAT,
    Checkpointer,
    CheckpointError,
    load_checkpoint,
    save_atomic,
)

TINY = ["algo.num_steps=32", "eval.episodes=2", "eval.num_envs=2", "eval.every_steps=0"]


def test_round_trip_of_a_training_checkpoint(train_run, tmp_path):
    train_run([*TINY, "total_timesteps=256"], tmp_path)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["format"] == FORMAT and state["algo"] == "ppo"
    assert state["global_step"] == 256
    assert set(state["modules"]) == {"agent", "optimizer", "envs"}
    assert "total_timesteps: 256" in state["config"]
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    # The weights load back into a fresh network of the same config.
    from conftest import compose_train

    from rlrun.algos._rollouts import make_policy
    from rlrun.envs.factory import make_vec_env

    cfg = compose_train(TINY)
    envs = make_vec_env(cfg.env, 1)
    policy = make_policy(cfg, envs.single_observation_space, envs.single_action_space)
    policy.load_state_dict(state["modules"]["agent"])


def test_directory_resolves_to_last(tmp_path):
    save_atomic({"format": FORMAT, "x": torch.ones(2)}, tmp_path / "checkpoints" / "last.pt")
    assert torch.equal(load_checkpoint(tmp_path)["x"], torch.ones(2))


def test_atomic_write_keeps_previous_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"format": FORMAT, "step": 1}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(CheckpointError, match="previous checkpoint is intact"):
        save_atomic({"format": FORMAT, "step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_retention_keeps_last_best_and_newest_numbered(tmp_path):
    checkpointer = Checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30):
        checkpointer.save({"format": FORMAT, "step": step}, step, best=(step == 20))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "last.pt", "step_000000000020.pt", "step_000000000030.pt"]
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 20
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 30


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"format": FORMAT, "w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an rlrun checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_continues_step_count_without_duplicate_metrics(train_run, tmp_path):
    train_run([*TINY, "total_timesteps=256"], tmp_path)
    before = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    result = train_run([*TINY, "total_timesteps=512"], tmp_path)  # same dir: resumes and extends
    assert result.global_step == 512
    after = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert after["global_step"] == 512
    assert not torch.equal(before["modules"]["agent"]["value_head.weight"], after["modules"]["agent"]["value_head.weight"])
    train_steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
                   if "train/policy_loss" in line]
    assert train_steps == sorted(set(train_steps))
    assert train_steps[-1] == 512 and 256 in train_steps


def test_resume_with_another_algorithms_checkpoint_is_refused(tmp_path):
    from conftest import compose_train

    from rlrun.run.facade import Run

    save_atomic(
        {"format": FORMAT, "algo": "other", "global_step": 5, "modules": {"q": {}}, "rng": {}, "config": ""},
        tmp_path / "checkpoints" / "last.pt",
    )
    with pytest.raises(CheckpointError, match="written by algo=other"):
        Run(compose_train(TINY), tmp_path)
