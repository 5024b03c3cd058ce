"""`compile=true`: PPO's minibatch forward pass and loss through torch.compile give the eager
path's losses and gradients, a compiled run logs the eager run's first update, and the switch
is refused (one line) where it does not apply."""

from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import read_metrics
from omegaconf import OmegaConf

from rlrun.algos import ppo
from rlrun.algos._ppo_family import compiled
from rlrun.cli import train_command as cli
from rlrun.config import ConfigError
from rlrun.data.batch import Batch
from rlrun.registry import algorithms
from rlrun.run.facade import config_changes

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(compiler) for compiler in cli.CXX_COMPILERS), reason="no C++ compiler for torch.compile"
)


def _minibatch(agent: ppo.ActorCritic, obs_space: gym.Space, action_space: gym.Space, rows: int) -> Batch:
    generator = torch.Generator().manual_seed(0)
    obs = torch.randn(rows, *obs_space.shape, generator=generator)
    with torch.no_grad():
        dist, values = agent.dist_and_value(obs)
        actions = dist.sample()
        logprobs = dist.log_prob(actions)
    return Batch(obs, actions, logprobs + 0.1 * torch.randn(rows, generator=generator), values,
                     torch.randn(rows, generator=generator), values + torch.randn(rows, generator=generator))


@needs_compiler
def test_compiled_minibatch_loss_matches_eager_loss_and_gradients(compose_cfg):
    cfg = compose_cfg(["env=Hopper-v4"])
    obs_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    torch.manual_seed(0)
    agent = ppo.make_policy(cfg, obs_space, action_space)
    minibatch = _minibatch(agent, obs_space, action_space, rows=64)
    algo = cfg.algo

    compiled_frames = torch._dynamo.utils.counters["frames"]["ok"]
    results = []
    for forward_and_loss in (ppo.minibatch_loss, compiled(ppo.minibatch_loss)):
        agent.zero_grad()
        loss, stats = forward_and_loss(agent, minibatch, algo.clip_coef,
                                       algo.clip_coef if algo.clip_vloss else None, algo.vf_coef, algo.ent_coef)
        loss.backward()
        results.append((loss.detach(), {k: v.detach() for k, v in stats.items()},
                        [p.grad.clone() for p in agent.parameters()]))
    (eager_loss, eager_stats, eager_grads), (loss, stats, grads) = results
    assert torch._dynamo.utils.counters["frames"]["ok"] > compiled_frames, "nothing went through torch.compile"
    assert eager_grads[0].abs().sum() > 0
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    for key, value in eager_stats.items():
        torch.testing.assert_close(stats[key], value, rtol=1e-5, atol=1e-6, msg=key)
    for grad, eager_grad in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, eager_grad, rtol=1e-4, atol=1e-6)


@needs_compiler
def test_compiled_run_logs_the_eager_runs_first_update(train_run, tmp_path):
    """One rollout and one update phase (16 minibatch steps) from the same seed: the compiled
    run's statistics agree with the eager run's to float rounding."""
    overrides = ["algo.num_steps=64", "total_timesteps=256", "eval.every_steps=0", "eval.episodes=2",
                 "eval.num_envs=2"]
    train_run(overrides, tmp_path / "eager")
    train_run([*overrides, "compile=true"], tmp_path / "compiled")

    def first_update(run_dir):
        rows = read_metrics(run_dir)
        return next(row for row in rows if "train/policy_loss" in row)

    eager, compiled = first_update(tmp_path / "eager"), first_update(tmp_path / "compiled")
    for key in ("train/policy_loss", "train/value_loss", "train/entropy", "train/approx_kl", "train/grad_norm"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-3, abs=1e-6), key
    assert compiled["train/updates"] == eager["train/updates"] == 16


def test_compile_is_refused_for_algorithms_without_a_minibatch_loss():
    users = {name for name, spec in algorithms().items() if spec.compiles}
    assert {"ppo", "rlhf"} <= users and "sac" not in users
    with pytest.raises(ConfigError, match=r"compile=true applies to algo=.*ppo.*; algo=sac .*drop compile=true"):
        cli.check_compile(algorithms()["sac"])


def test_compile_without_a_cxx_compiler_names_the_fix(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"needs a C\+\+ compiler .*install one"):
        cli.check_compile(algorithms()["ppo"])


def test_speed_switches_may_change_on_resume(compose_cfg):
    stored = OmegaConf.to_yaml(OmegaConf.structured(compose_cfg([])))
    switched = compose_cfg(["compile=true", "numpy_acting=false", "torch_threads=2", "device=cpu"])
    assert config_changes(stored, switched) == []
    assert config_changes(stored, compose_cfg(["algo.clip_coef=0.1"])) == ["algo.clip_coef: 0.2 -> 0.1"]
