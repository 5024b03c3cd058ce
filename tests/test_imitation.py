"""Behavioral cloning and DAgger: losses, expert loading, datasets, the loops, and learning tests."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY_EVAL, assert_same, read_metrics

from rlrun.algos._imitation import expert_from_checkpoint, holdout_split, imitation_loss
from rlrun.algos.dagger import mixing_beta
from rlrun.config import ConfigError, EnvConfig
from rlrun.data.demos import Demos, collect_demos, load_demos, minari_available, save_demos
from rlrun.envs.factory import make_vec_env
from rlrun.export.rebuild import load_policy
from rlrun.ops.distributions import Categorical, DiagGaussian
from rlrun.run.checkpoint_files import load_checkpoint

CARTPOLE = gym.make("CartPole-v1")
IDP_EXPERT = Path(__file__).resolve().parent / "data" / "idp_ppo_expert.pt"


@pytest.fixture(scope="module")
def tiny_expert(tmp_path_factory):
    """A barely trained PPO CartPole checkpoint: enough to test plumbing, not to imitate."""
    from conftest import train_in_process

    run_dir = tmp_path_factory.mktemp("tiny_expert")
    train_in_process(["total_timesteps=256", "algo.num_steps=32", *TINY_EVAL], run_dir)
    return run_dir


def test_imitation_losses_on_hand_examples():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    actions = torch.tensor([1, 0])
    # -log softmax: -log(3/4) and -log(1/2) (eq. 13.1's cross-entropy).
    expected = (-math.log(0.75) - math.log(0.5)) / 2
    assert math.isclose(float(imitation_loss(Categorical(logits), actions, "mse")), expected, rel_tol=1e-6)
    mean, log_std = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(2.0)]])
    target = torch.tensor([[1.0, 1.0]])
    # Gaussian NLL per dim: 0.5 z² + log σ + 0.5 log 2π with z = 1, σ = 1 and z = 0, σ = 2.
    nll = 0.5 + 0.5 * math.log(2 * math.pi) + math.log(2.0) + 0.5 * math.log(2 * math.pi)
    assert math.isclose(float(imitation_loss(DiagGaussian(mean, log_std), target, "nll")), nll, rel_tol=1e-6)
    # Squared error of the mean, summed over action dims (eq. 13.5); the std plays no part.
    assert math.isclose(float(imitation_loss(DiagGaussian(mean, log_std), target, "mse")), 1.0, rel_tol=1e-6)


def test_holdout_split_is_disjoint_seeded_and_sized():
    train_idx, val_idx = holdout_split(100, 0.2, seed=3)
    assert len(val_idx) == 20 and len(train_idx) == 80
    assert sorted(torch.cat([train_idx, val_idx]).tolist()) == list(range(100))
    assert torch.equal(holdout_split(100, 0.2, seed=3)[1], val_idx)
    assert len(holdout_split(5, 0.0, seed=0)[1]) == 0


def test_beta_schedules():
    assert [mixing_beta("exponential", 0.5, i, 4) for i in (1, 2, 3)] == [0.5, 0.25, 0.125]
    assert [mixing_beta("linear", 0.8, i, 4) for i in (1, 2, 3, 4)] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert mixing_beta("zero", 0.9, 1, 4) == 0.0


def test_collected_episodes_are_whole_and_consistent():
    envs = make_vec_env(EnvConfig(id="CartPole-v1"), 3)
    demos = collect_demos(lambda obs: torch.zeros(len(obs), dtype=torch.long), None, envs, 5,
                          lambda step: None, torch.device("cpu"), seed=0)
    envs.close()
    # Always pushing left ends every episode by termination within a few dozen steps.
    assert demos.num_episodes == 5 and demos.episode_starts.sum() == 5
    assert demos.terminations.sum() == 5 and not demos.truncations.any()
    ends = np.flatnonzero(demos.terminations)
    assert ends[-1] == len(demos) - 1 and np.array_equal(np.flatnonzero(demos.episode_starts)[1:], ends[:-1] + 1)
    assert np.array_equal(demos.episode_returns(), np.diff(np.concatenate([[-1], ends])).astype(float))
    assert (demos.actions == 0).all() and demos.obs.dtype == np.float32


def _demos(n_episodes=2, length=4):
    rng = np.random.default_rng(0)
    n = n_episodes * length
    starts = np.zeros(n, bool)
    starts[::length] = True
    terminations = np.roll(starts, -1)
    return Demos(obs=rng.normal(size=(n, 4)).astype(np.float32), actions=rng.integers(0, 2, n),
                 rewards=np.ones(n, np.float32), terminations=terminations, truncations=np.zeros(n, bool),
                 episode_starts=starts, final_obs=rng.normal(size=(n_episodes, 4)).astype(np.float32))


def test_npz_dataset_round_trip_and_refusals(tmp_path, monkeypatch):
    monkeypatch.setattr("rlrun.data.demos.minari_available", lambda: False)
    demos = _demos()
    path = save_demos(demos, tmp_path, "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space)
    assert path.name == "demos.npz"
    with np.load(path, allow_pickle=False) as data:
        assert str(data["env_id"]) == "CartPole-v1"
    assert_same(load_demos(str(path), "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space), demos, "demos")
    acrobot = gym.make("Acrobot-v1")
    with pytest.raises(ConfigError, match="recorded on CartPole-v1"):
        load_demos(str(path), "Acrobot-v1", acrobot.observation_space, acrobot.action_space)
    with pytest.raises(ConfigError, match="no such file"):
        load_demos(str(tmp_path / "missing.npz"), "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space)


@pytest.mark.skipif(not minari_available(), reason="minari and h5py are not installed")
def test_minari_dataset_round_trip(tmp_path, monkeypatch):
    demos = _demos()
    path = save_demos(demos, tmp_path, "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space)
    assert (path / "data" / "metadata.json").is_file()
    loaded = load_demos(str(path), "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space)
    assert_same(loaded, demos, "demos")
    # The same dataset found by its id among the local Minari datasets.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    shutil.copytree(path, tmp_path / "minari" / "rlrun" / "cartpole" / "expert-v0")
    by_id = load_demos("rlrun/cartpole/expert-v0", "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space)
    assert_same(by_id, demos, "demos")


def _expert(checkpoint, env_id="CartPole-v1"):
    return expert_from_checkpoint(load_policy, str(checkpoint), env_id, CARTPOLE.observation_space,
                                  CARTPOLE.action_space, torch.device("cpu"))


def test_expert_refusals(tiny_expert, tmp_path):
    with pytest.raises(ConfigError, match="algo.expert: no checkpoint"):
        _expert(tmp_path / "nowhere")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ConfigError, match="not an rlrun checkpoint"):
        _expert(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "rlrun-checkpoint-1", "thing": SimpleNamespace(a=1)}, unsafe)
    with pytest.raises(ConfigError, match="refused to load"):
        _expert(unsafe)
    with pytest.raises(ConfigError, match="trained on CartPole-v1, not Acrobot-v1"):
        _expert(tiny_expert, "Acrobot-v1")


def test_expert_normalises_raw_observations_with_its_own_statistics(tmp_path, train_run):
    train_run(["total_timesteps=256", "algo.num_steps=32", "env.normalize_obs=true", *TINY_EVAL], tmp_path)
    state = load_checkpoint(tmp_path)
    rms = state["modules"]["envs"]["obs_rms"]
    expert = _expert(tmp_path)
    raw = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 4)), dtype=torch.float32) * 2.0
    normalised = ((raw.double() - rms["mean"]) / torch.sqrt(rms["var"] + 1e-8)).clamp(-10, 10).float()
    assert torch.equal(expert.act(raw), expert.policy.act(normalised))
    assert not torch.equal(expert.act(raw), expert.policy.act(raw))  # statistics matter here


def test_bc_smoke_dataset_reuse_and_eval_command(train_run, tiny_expert, tmp_path, monkeypatch):
    first = tmp_path / "first"
    result = train_run(["algo=bc", f"algo.expert={tiny_expert}", "algo.expert_episodes=3", "algo.epochs=3",
                        *TINY_EVAL], first)
    keys = set().union(*read_metrics(first))
    for key in ("train/loss", "train/val_loss", "train/val_accuracy", "train/dataset_size", "eval/return_mean"):
        assert key in keys, key
    dataset = next(path for path in (first / "demos.npz", first / "demos") if path.exists())  # npz or Minari
    size = len(load_demos(str(dataset), "CartPole-v1", CARTPOLE.observation_space, CARTPOLE.action_space))
    assert result.global_step == 3 * (size - round(size * 0.1))  # epochs x training split
    log = (first / "train.log").read_text()
    assert "budget   algo.epochs=3 epochs over the demonstrations" in log  # not "1,000,000 env steps"
    assert f"Trained algo.epochs=3 epochs ({result.global_step:,} samples, before total_timesteps" in log
    assert "Recorded 3 expert episodes (" in log
    second = tmp_path / "second"
    train_run(["algo=bc", f"algo.dataset={dataset}", "algo.epochs=1", *TINY_EVAL], second)
    assert not (second / dataset.name).exists()
    from rlrun.cli import train_command as cli

    monkeypatch.setattr(sys, "argv", ["rlrun-eval", f"checkpoint={first}", "eval.episodes=2", "eval.num_envs=1"])
    cli.evaluate()
    report = json.loads((first / "checkpoints" / "last.eval.json").read_text())
    assert report["algo"] == "bc" and len(report["returns"]) == 2


def test_bc_resumes_without_recollecting(train_run, tiny_expert, tmp_path):
    overrides = ["algo=bc", f"algo.expert={tiny_expert}", "algo.expert_episodes=2", *TINY_EVAL]
    train_run([*overrides, "algo.epochs=2"], tmp_path)
    demos_before = load_checkpoint(tmp_path)["modules"]["demos"]["obs"]
    result = train_run([*overrides, "algo.epochs=4", "resume.allow_config_change=true"], tmp_path)
    state = load_checkpoint(tmp_path)
    assert state["modules"]["progress"]["epochs"] == 4
    assert torch.equal(state["modules"]["demos"]["obs"], demos_before)
    assert result.global_step == 4 * read_metrics(tmp_path)[0]["step"]  # 4 epochs of the same split


@pytest.mark.parametrize("loss", ["nll", "mse"])
def test_bc_and_dagger_on_continuous_actions(train_run, tmp_path, loss):
    expert_dir = tmp_path / "expert"
    train_run(["env=Pendulum-v1", "total_timesteps=128", "algo.num_steps=64", *TINY_EVAL], expert_dir)
    common = ["env=Pendulum-v1", f"algo.expert={expert_dir}", "algo.expert_episodes=1", "algo.epochs=1",
              f"algo.loss={loss}", *TINY_EVAL]
    train_run(["algo=bc", *common], tmp_path / "bc")
    assert "train/val_mse" in set().union(*read_metrics(tmp_path / "bc"))
    train_run(["algo=dagger", "algo.rounds=1", "algo.episodes_per_round=1", *common], tmp_path / "dagger")
    rounds = [m for m in read_metrics(tmp_path / "dagger") if "train/round_labels" in m]
    assert len(rounds) == 1 and rounds[0]["train/dataset_size"] == 400  # two 200-step episodes


def test_dagger_logs_rounds(train_run, tiny_expert, tmp_path):
    train_run(["algo=dagger", f"algo.expert={tiny_expert}", "algo.expert_episodes=1", "algo.epochs=1",
               "algo.rounds=2", "algo.episodes_per_round=2", *TINY_EVAL], tmp_path)
    rounds = [m for m in read_metrics(tmp_path) if "train/round_labels" in m]
    assert [m["train/round"] for m in rounds] == [1.0, 2.0]
    assert [m["train/beta"] for m in rounds] == [0.5, 0.25]
    sizes = [m["train/dataset_size"] for m in rounds]
    assert sizes[1] == sizes[0] + rounds[1]["train/round_labels"]
    assert all("train/round_eval_return" in m for m in rounds)


def test_imitation_refusals(train_run, tiny_expert, tmp_path):
    with pytest.raises(ConfigError, match="algo.expert=<rlrun checkpoint"):
        train_run(["algo=bc", *TINY_EVAL], tmp_path / "a")
    with pytest.raises(ConfigError, match="algo=dagger needs an expert"):
        train_run(["algo=dagger", f"algo.dataset={tmp_path / 'x.npz'}", *TINY_EVAL], tmp_path / "b")
    with pytest.raises(ConfigError, match="env.normalize_obs=false"):
        train_run(["algo=bc", f"algo.expert={tiny_expert}", "env.normalize_obs=true", *TINY_EVAL], tmp_path / "c")
    with pytest.raises(ConfigError, match="not Acrobot-v1"):
        train_run(["algo=bc", f"algo.expert={tiny_expert}", "env=Acrobot-v1", *TINY_EVAL], tmp_path / "d")


def test_cli_refuses_a_missing_expert_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from rlrun.cli.train_command import train; train()", "algo=bc", f"algo.expert={tmp_path / 'none'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("rlrun: algo.expert: no checkpoint") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_bc_reaches_the_expert_return_on_cartpole(train_each_seed, cartpole_expert, tmp_path):
    assert cartpole_expert.eval_return >= 475
    results = train_each_seed(["algo=bc", f"algo.expert={cartpole_expert.checkpoint}",
                               "algo.expert_episodes=3", "eval.every_steps=0", "eval.episodes=10"], tmp_path)
    for seed, result in results.items():
        assert result.final_eval_return >= 0.95 * cartpole_expert.eval_return, (seed, result.final_eval_return)
        last = [m for m in read_metrics(tmp_path / f"seed{seed}") if "train/val_accuracy" in m][-1]
        assert last["train/val_accuracy"] > 0.9, (seed, last)


@pytest.mark.slow
def test_dagger_reaches_the_expert_return_on_cartpole_from_one_episode(
    train_each_seed, cartpole_expert, tmp_path
):
    """BC on the one episode alone returns 48-325 on seeds 0-2; two DAgger rounds reach 500."""
    results = train_each_seed(["algo=dagger", f"algo.expert={cartpole_expert.checkpoint}",
                               "algo.expert_episodes=1", "algo.rounds=2", "algo.episodes_per_round=1",
                               "eval.every_steps=0", "eval.episodes=10"], tmp_path)
    for seed, result in results.items():
        assert result.final_eval_return >= 0.95 * cartpole_expert.eval_return, (seed, result.final_eval_return)
        rounds = [m for m in read_metrics(tmp_path / f"seed{seed}") if "train/round_labels" in m]
        assert [m["train/round"] for m in rounds] == [1.0, 2.0]

@pytest.mark.slow
def test_dagger_beats_bc_at_equal_expert_labels(train_run, tmp_path):
    """InvertedDoublePendulum, where BC's errors compound: BC from 4 expert episodes (4000 labels)
    returns 170-760 on seeds 0-2, DAgger from 1 expert episode and 5 learner rounds (1700-3400
    labels in all) the expert's 9320. The expert is a small PPO checkpoint shipped in tests/data.
    """
    common = ["env=InvertedDoublePendulum-v4", f"algo.expert={IDP_EXPERT}", "eval.every_steps=0", "eval.episodes=5"]
    bc = train_run(["algo=bc", "algo.expert_episodes=4", *common], tmp_path / "bc")
    dagger = train_run(["algo=dagger", "algo.expert_episodes=1", "algo.rounds=5", "algo.episodes_per_round=1",
                        "algo.beta_schedule=zero", *common], tmp_path / "dagger")
    bc_metrics, dagger_metrics = read_metrics(tmp_path / "bc"), read_metrics(tmp_path / "dagger")
    expert_return = bc_metrics[0]["rollout/ep_return_mean"]  # the recorded expert episodes
    assert expert_return > 9000
    bc_labels = bc_metrics[0]["train/dataset_size"]
    dagger_labels = max(m["train/dataset_size"] for m in dagger_metrics if "train/dataset_size" in m)
    assert dagger_labels <= bc_labels, (dagger_labels, bc_labels)
    assert dagger.final_eval_return >= 0.9 * expert_return, dagger.final_eval_return
    assert dagger.final_eval_return >= 3 * bc.final_eval_return, (dagger.final_eval_return, bc.final_eval_return)
