"""DDPG, TD3 and SAC: squashed-Gaussian math, action scaling, noise, update targets, smoke,
checkpoint and resume, refusals, and learning on Pendulum-v1."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import read_metrics
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from rlrun.config import ConfigError
from rlrun.data.replay import ReplayBatch
from rlrun.networks.continuous import ActionScaler
from rlrun.ops.distributions import TanhGaussian, tanh_log_det_jacobian
from rlrun.run.checkpoint_files import load_checkpoint
from rlrun.training.noise import OrnsteinUhlenbeckNoise

ALGOS = ["ddpg", "td3", "sac"]
TINY = ["env=Pendulum-v1", "eval.episodes=2", "eval.num_envs=2", "eval.every_steps=0",
        "network.hidden_sizes=[32,32]", "algo.batch_size=32", "algo.learning_starts=100", "algo.log_every=100"]


# ----- math ---------------------------------------------------------------------------------
def test_tanh_log_det_jacobian_is_stable_and_exact():
    u = torch.linspace(-8, 8, 101, dtype=torch.float64)
    torch.testing.assert_close(tanh_log_det_jacobian(u), torch.log1p(-torch.tanh(u).square()))
    far = tanh_log_det_jacobian(torch.tensor([-40.0, 40.0]))  # naive form: log(0) = -inf
    assert torch.isfinite(far).all()
    torch.testing.assert_close(far, torch.full((2,), 2 * math.log(2) - 80.0))


def test_tanh_gaussian_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mean = torch.randn(64, 3, dtype=torch.float64)
    log_std = torch.randn(64, 3, dtype=torch.float64) * 0.5
    ours = TanhGaussian(mean, log_std)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    actions = torch.rand(64, 3, dtype=torch.float64) * 1.8 - 0.9
    torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions).sum(-1))

    torch.manual_seed(1)
    sampled, logprobs = ours.rsample()
    torch.manual_seed(1)
    pre_tanh = mean + log_std.exp() * torch.randn_like(mean)  # the same draw, by hand
    jacobian = torch.log1p(-torch.tanh(pre_tanh) ** 2)
    expected = (Normal(mean, log_std.exp()).log_prob(pre_tanh) - jacobian).sum(-1)
    torch.testing.assert_close(sampled, torch.tanh(pre_tanh))
    torch.testing.assert_close(logprobs, expected)
    assert torch.equal(ours.mode(), torch.tanh(mean))


def test_tanh_gaussian_sample_is_reparameterised():
    mean = torch.zeros(5, 2, requires_grad=True)
    log_std = torch.zeros(5, 2, requires_grad=True)
    actions, logprobs = TanhGaussian(mean, log_std).rsample()
    (actions.sum() + logprobs.sum()).backward()
    assert mean.grad.abs().sum() > 0 and log_std.grad.abs().sum() > 0


def test_action_scaler_maps_unit_interval_to_bounds_and_back():
    low, high = np.array([-2.0, 0.0, -1.0], np.float32), np.array([2.0, 1.0, 3.0], np.float32)
    space = gym.spaces.Box(low=low, high=high)
    scaler = ActionScaler(space)
    unit = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, -0.5, 0.25]])
    env = scaler.to_env(unit)
    torch.testing.assert_close(env[0], torch.tensor([-2.0, 0.0, -1.0]))
    torch.testing.assert_close(env[1], torch.tensor([2.0, 1.0, 3.0]))
    torch.testing.assert_close(env[2], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(env[3], torch.tensor([1.0, 0.25, 1.5]))
    torch.testing.assert_close(scaler.to_unit(env), unit)
    assert not scaler.state_dict()  # derived from the env, not checkpointed


def test_ornstein_uhlenbeck_stationary_std_and_reset():
    torch.manual_seed(0)
    theta, sigma, dt = 0.5, 0.3, 0.1
    noise = OrnsteinUhlenbeckNoise(20_000, 1, theta, sigma, dt, torch.device("cpu"))
    for _ in range(300):  # (1 - theta dt)^300 ≈ 2e-7: stationary
        sample = noise.sample()
    decay = 1 - theta * dt
    expected_std = sigma * math.sqrt(dt / (1 - decay**2))  # AR(1) x' = decay x + sigma sqrt(dt) ε
    assert abs(sample.std().item() - expected_std) < 0.02 * expected_std
    assert abs(sample.mean().item()) < 0.05 * expected_std
    ended = np.zeros(20_000, bool)
    ended[:10] = True
    before = noise.state.clone()
    noise.reset(ended)
    assert noise.state[:10].abs().sum() == 0 and torch.equal(noise.state[10:], before[10:])
    restored = OrnsteinUhlenbeckNoise(20_000, 1, theta, sigma, dt, torch.device("cpu"))
    restored.load_state_dict(noise.state_dict())
    assert torch.equal(restored.state, noise.state)


# ----- update targets -------------------------------------------------------------------------
def _batch(obs_dim: int, action_dim: int, size: int = 8) -> ReplayBatch:
    generator = torch.Generator().manual_seed(3)
    return ReplayBatch(
        obs=torch.randn(size, obs_dim, generator=generator),
        actions=torch.rand(size, action_dim, generator=generator) * 2 - 1,
        rewards=torch.randn(size, generator=generator),
        next_obs=torch.randn(size, obs_dim, generator=generator),
        terminations=torch.tensor([1.0, 0.0] * (size // 2)),
    )


def _pendulum_envs():
    """What a learner reads of its training envs: Pendulum-v1's spaces, one env."""
    env = gym.make("Pendulum-v1")
    envs = SimpleNamespace(single_observation_space=env.observation_space,
                           single_action_space=env.action_space, num_envs=1)
    env.close()
    return envs


def test_sac_critic_target_is_soft_min_of_target_twins(compose_cfg):
    from rlrun.algos.sac import SACLearner

    cfg = compose_cfg(["algo=sac", "env=Pendulum-v1", "network.hidden_sizes=[16]", "algo.alpha_init=0.5"])
    learner = SACLearner(cfg, _pendulum_envs(), torch.device("cpu"))
    with torch.no_grad():  # make the target twins differ from the online ones
        for p in learner.critic_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    batch = _batch(3, 1)
    with torch.no_grad():  # everything before the update, which moves the target twins
        q = torch.stack([c(torch.cat([batch.obs, batch.actions], -1)) for c in learner.critic.critics])
        dist = learner.actor.dist(batch.next_obs)
        torch.manual_seed(7)
        pre_tanh = dist.mean + dist.log_std.exp() * torch.randn_like(dist.mean)  # the update's first draw
        next_actions = torch.tanh(pre_tanh)
        u = pre_tanh.double()  # change of variables by hand, in float64
        next_logprobs = (Normal(dist.mean.double(), dist.log_std.double().exp()).log_prob(u)
                         - torch.log1p(-torch.tanh(u) ** 2)).sum(-1).float()
        inputs = torch.cat([batch.next_obs, next_actions], -1)
        next_q = torch.minimum(*[c(inputs) for c in learner.critic_target.critics])
        targets = batch.rewards + 0.99 * (1 - batch.terminations) * (next_q - 0.5 * next_logprobs)
        expected_loss = ((q - targets) ** 2).mean(1).sum()
    torch.manual_seed(7)
    stats = learner.update(batch)
    torch.testing.assert_close(stats["critic_loss"], expected_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats["alpha"], torch.tensor(0.5))


def test_td3_target_uses_min_of_target_twins_and_delays_the_actor(compose_cfg):
    from rlrun.algos import td3
    from rlrun.algos._deterministic import DeterministicLearner

    cfg = compose_cfg(["algo=td3", "env=Pendulum-v1", "network.hidden_sizes=[16]", "algo.policy_noise=0.2",
                       "algo.noise_clip=0.0", "algo.policy_delay=2"])  # clip 0: no smoothing
    learner = DeterministicLearner(cfg, _pendulum_envs(), torch.device("cpu"), num_critics=2)
    with torch.no_grad():
        for p in [*learner.critic_target.parameters(), *learner.actor_target.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    batch = _batch(3, 1)
    with torch.no_grad():
        q = torch.stack([c(torch.cat([batch.obs, batch.actions], -1)) for c in learner.critic.critics])
        inputs = torch.cat([batch.next_obs, learner.actor_target(batch.next_obs)], -1)
        next_q = torch.minimum(*[c(inputs) for c in learner.critic_target.critics])
        targets = batch.rewards + 0.99 * (1 - batch.terminations) * next_q
    actor_before = [p.clone() for p in learner.actor.parameters()]
    target_before = [p.clone() for p in learner.actor_target.parameters()]
    stats = td3.update(learner, batch, 1)  # not a multiple of policy_delay: critics only
    torch.testing.assert_close(stats["critic_loss"], ((q - targets) ** 2).mean(1).sum())
    assert "actor_loss" not in stats
    assert all(torch.equal(a, b) for a, b in zip(actor_before, learner.actor.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(target_before, learner.actor_target.parameters()))
    stats = td3.update(learner, batch, 2)
    assert "actor_loss" in stats
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, learner.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(target_before, learner.actor_target.parameters()))


def test_td3_target_smoothing_is_clipped_and_stays_in_bounds():
    from rlrun.algos.td3 import smoothed

    actions = torch.tensor([[0.95, 0.0, -0.5]]).repeat(1000, 1)
    assert smoothed(actions, 0.0, 0.5) is actions
    result = smoothed(actions, 10.0, 0.1)  # wide noise: nearly every draw is clipped to ±0.1
    noise = result - actions
    assert noise[:, 1:].abs().max() <= 0.1 + 1e-6 and (noise[:, 1:].abs() > 0.099).float().mean() > 0.9
    assert result[:, 0].max() == 1.0 and result[:, 0].min() >= 0.85 - 1e-6  # clamped to the action bound


# ----- runs -----------------------------------------------------------------------------------
def test_train_off_policy_runs_a_learner_that_carries_its_update_as_the_algorithm_does(
        train_run, compose_cfg, tmp_path):
    from rlrun.algos._offpolicy import train_off_policy
    from rlrun.algos.sac import SACLearner
    from rlrun.run.facade import Run

    class Learner(SACLearner):  # a plugin's learner: update(batch, update) for train_off_policy
        def update(self, batch, update):
            return super().update(batch)

    overrides = ["algo=sac", *TINY, "total_timesteps=200"]
    own = train_run(overrides, tmp_path / "own")
    cfg = compose_cfg(overrides)
    run = Run(cfg, tmp_path / "plugin")
    result = train_off_policy(cfg, run, lambda envs: Learner(cfg, envs, run.device))
    assert result.final_eval_return == own.final_eval_return
    actors = [load_checkpoint(d / "checkpoints" / "last.pt")["modules"]["actor"] for d in (tmp_path / "own",
                                                                                          tmp_path / "plugin")]
    assert all(torch.equal(actors[0][k], actors[1][k]) for k in actors[0])


@pytest.mark.parametrize("algo", ALGOS)
def test_smoke_logs_and_checkpoints_the_replay_buffer(train_run, tmp_path, algo):
    result = train_run([f"algo={algo}", *TINY, "total_timesteps=300"], tmp_path)
    assert result.global_step == 300 and math.isfinite(result.final_eval_return)
    keys = set().union(*read_metrics(tmp_path))
    expected = {"train/critic_loss", "train/actor_loss", "train/q_mean", "train/updates", "train/buffer_size",
                "rollout/ep_return_mean", "time/sps", "eval/return_mean"}
    if algo == "sac":
        expected |= {"train/alpha", "train/alpha_loss", "train/entropy"}
    assert expected <= keys, expected - keys
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["algo"] == algo and state["global_step"] == 300
    modules = state["modules"]
    expected = {"actor", "critic", "critic_target", "actor_optimizer", "critic_optimizer", "sampler", "progress"}
    assert expected <= set(modules)
    assert modules["progress"]["updates"] == 200  # one per env step after learning_starts=100
    replay = load_checkpoint(tmp_path / "checkpoints" / modules["replay"]["side_file"])["state"]
    assert len(replay["obs"]) == 300 and replay["pos"] == 300
    assert (replay["actions"].abs() <= 1).all()  # stored in [-1, 1]


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_continues_steps_buffer_and_update_schedule(train_run, tmp_path, algo):
    train_run([f"algo={algo}", *TINY, "total_timesteps=200"], tmp_path)
    first = load_checkpoint(tmp_path / "checkpoints" / "replay.pt")["state"]
    first = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in first.items()}
    result = train_run([f"algo={algo}", *TINY, "total_timesteps=350"], tmp_path)
    assert result.global_step == 350
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["modules"]["progress"]["updates"] == 250  # 100 + 150 updates, none repeated or skipped
    replay = load_checkpoint(tmp_path / "checkpoints" / "replay.pt")["state"]
    assert len(replay["obs"]) == 350
    for name in ("obs", "actions", "rewards", "next_obs", "terminations", "truncations"):
        assert torch.equal(replay[name][:200], first[name]), name
    steps = [row["step"] for row in read_metrics(tmp_path) if "train/updates" in row]
    assert steps == sorted(steps) and steps[-1] == 350 and 300 in steps


def test_ddpg_ou_noise_state_is_checkpointed(train_run, tmp_path):
    train_run(["algo=ddpg", *TINY, "algo.noise=ou", "total_timesteps=150"], tmp_path)
    noise = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["modules"]["noise"]["state"]
    assert noise.shape == (1, 1) and noise.abs().sum() > 0


def test_sac_fixed_alpha(train_run, tmp_path):
    train_run(["algo=sac", *TINY, "algo.autotune=false", "algo.alpha=0.05", "total_timesteps=200"], tmp_path)
    alphas = [row["train/alpha"] for row in read_metrics(tmp_path) if "train/alpha" in row]
    assert alphas and all(a == pytest.approx(0.05) for a in alphas)
    assert "alpha_optimizer" not in load_checkpoint(tmp_path / "checkpoints" / "last.pt")["modules"]


def test_linear_schedule_anneals_every_learning_rate(train_run, tmp_path):
    overrides = ["algo=sac", *TINY, "total_timesteps=300", "optimizer.schedule=linear", "optimizer.lr=1e-3",
                 "algo.actor_lr=2e-3", "checkpoint.every_steps=200"]
    train_run(overrides, tmp_path)
    modules = load_checkpoint(tmp_path / "checkpoints" / "step_000000000200.pt")["modules"]
    factor = 1 - 200 / 300
    assert modules["actor_optimizer"]["lr"] == pytest.approx(2e-3 * factor)
    assert modules["critic_optimizer"]["lr"] == pytest.approx(1e-3 * factor)
    assert modules["alpha_optimizer"]["lr"] == pytest.approx(1e-3 * factor)


@pytest.mark.parametrize("algo", ALGOS)
def test_discrete_actions_are_refused(train_run, tmp_path, algo):
    message = f"algo={algo} needs continuous (Box) actions; CartPole-v1 has Discrete actions: "
    message += "use algo=dqn or ppo"
    with pytest.raises(ConfigError, match=re.escape(message)):
        train_run([f"algo={algo}", "env=CartPole-v1"], tmp_path)
    from rlrun.registry import algorithms

    env = gym.make("CartPole-v1")
    with pytest.raises(ConfigError, match=f"algo={algo} needs continuous"):
        algorithms()[algo].check_spaces(env.observation_space, env.action_space)


def test_mujoco_presets_are_the_published_settings(compose_cfg):
    # SAC: RL Zoo's MuJoCo entries; TD3 and DDPG: CleanRL's td3/ddpg_continuous_action.py
    for algo, lr, starts in [("sac", 3e-4, 10000), ("td3", 3e-4, 25000), ("ddpg", 3e-4, 25000)]:
        cfg = compose_cfg([f"algo={algo}", "env=Hopper-v4"])
        assert (cfg.network.hidden_sizes, cfg.network.activation) == ([256, 256], "relu")
        assert (cfg.algo.batch_size, cfg.algo.buffer_size) == (256, 1_000_000)
        assert cfg.algo.learning_starts == starts
        assert (cfg.optimizer.lr, cfg.algo.tau, cfg.algo.gamma, cfg.env.num_envs) == (lr, 0.005, 0.99, 1)
        assert cfg.total_timesteps == 1_000_000
        assert not cfg.env.normalize_obs and not cfg.env.normalize_reward
    cfg = compose_cfg(["algo=td3", "env=Hopper-v4"])
    assert (cfg.algo.policy_noise, cfg.algo.noise_clip, cfg.algo.policy_delay) == (0.2, 0.5, 2)
    assert compose_cfg(["algo=ddpg", "env=Hopper-v4"]).algo.policy_delay == 2


@pytest.mark.parametrize("algo", ALGOS)
def test_classic_preset_turns_off_pendulum_normalisation(compose_cfg, algo):
    cfg = compose_cfg([f"algo={algo}", "env=Pendulum-v1"])
    assert not cfg.env.normalize_obs and not cfg.env.normalize_reward


# ----- learning -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_learns_pendulum(learn, tmp_path, algo):
    # the classic presets at 10k steps: seeds 0-4 score -164 to -281 (DDPG), -158 to -207 (TD3),
    # -163 to -202 (SAC); random play scores about -1200
    learn([f"algo={algo}", "env=Pendulum-v1", "total_timesteps=10000"], tmp_path, -400)


@pytest.mark.parametrize("algo", ["sac", "dqn"])
def test_a_budget_below_learning_starts_says_it_never_updates(train_run, tmp_path, algo):
    env = "env=Pendulum-v1" if algo == "sac" else "env=CartPole-v1"
    train_run([f"algo={algo}", env, "total_timesteps=200", "algo.learning_starts=500", "eval.episodes=1",
               "eval.num_envs=1"], tmp_path)
    log = (tmp_path / "train.log").read_text()
    assert "total_timesteps=200 <= algo.learning_starts=500: this run only explores and never updates" in log
