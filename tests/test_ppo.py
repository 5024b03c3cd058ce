"""PPO: the loss on a hand example, smoke runs, and a learning test."""

import math

import pytest
import torch
from conftest import TINY_EVAL as TINY
from conftest import read_metrics

from rlrun.algos.ppo import ppo_loss
from rlrun.ops.clipped import clipped_surrogate, clipped_value_loss


def test_ppo_loss_on_a_hand_example():
    old = torch.zeros(3)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([1.0, 1.0, -2.0])
    # min(r A, clip(r) A): 1.5 -> min(1.5, 1.2) = 1.2 ; 0.5 -> min(0.5, 0.8) = 0.5 ; 1.1, A=-2 -> min(-2.2, -2.2) = -2.2
    expected_policy = -(1.2 + 0.5 - 2.2) / 3
    new_v, old_v, ret = torch.tensor([1.0, 0.0, 3.0]), torch.tensor([0.5, 0.0, 2.0]), torch.tensor([2.0, 1.0, 2.0])
    # unclipped errors: 1, 1, 1 ; clipped values: 0.7, 0.0, 2.2 -> errors 1.69, 1, 0.04 ; max: 1.69, 1, 1
    expected_value = 0.5 * (1.69 + 1.0 + 1.0) / 3
    entropy = torch.tensor([0.5, 0.7, 0.9])
    loss, stats = ppo_loss(new, old, adv, new_v, old_v, ret, entropy, clip_coef=0.2, value_clip=0.2, vf_coef=0.5,
                           ent_coef=0.01)
    assert math.isclose(float(stats["policy_loss"]), expected_policy, rel_tol=1e-5)
    assert math.isclose(float(stats["value_loss"]), expected_value, rel_tol=1e-5)
    assert math.isclose(float(loss), expected_policy + 0.5 * expected_value - 0.01 * 0.7, rel_tol=1e-5)
    assert math.isclose(float(stats["clip_frac"]), 2 / 3, rel_tol=1e-6)
    expected_kl = sum((r - 1) - math.log(r) for r in (1.5, 0.5, 1.1)) / 3
    assert math.isclose(float(stats["approx_kl"]), expected_kl, rel_tol=1e-5)


def test_clipped_surrogate_clips_each_side_by_the_sign_of_the_advantage():
    # ratios 1.5, 0.5, 0.5, 1.5 with A = +1, +1, -1, -1 and ε = 0.25:
    # min(1.5, 1.25) = 1.25 ; min(0.5, 0.75) = 0.5 ; min(-0.5, -0.75) = -0.75 ; min(-1.5, -1.25) = -1.5
    new = torch.log(torch.tensor([1.5, 0.5, 0.5, 1.5])).requires_grad_()
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    policy_loss, stats = clipped_surrogate(new, torch.zeros(4), adv, clip_coef=0.25)
    assert math.isclose(float(policy_loss.detach()), -(1.25 + 0.5 - 0.75 - 1.5) / 4, rel_tol=1e-6)
    policy_loss.backward()
    # Only the unclipped terms (rows 1 and 3) pass a gradient: d(-ρA/4)/d log ρ = -ρA/4.
    torch.testing.assert_close(new.grad, torch.tensor([0.0, -0.125, 0.0, 0.375]))
    assert math.isclose(float(stats["clip_frac"]), 1.0)


def test_clipped_value_loss_with_and_without_a_clip():
    new_v, old_v, ret = torch.tensor([3.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([2.5, 2.0])
    # unclipped errors: (3 - 2.5)^2 = 0.25, (0 - 2)^2 = 4
    assert math.isclose(float(clipped_value_loss(new_v, old_v, ret, None)), 0.5 * (0.25 + 4) / 2)
    # clip 0.5 around the old values: 3 -> 1.5, error (1.5 - 2.5)^2 = 1 > 0.25 is kept; 0 stays 0
    assert math.isclose(float(clipped_value_loss(new_v, old_v, ret, 0.5)), 0.5 * (1 + 4) / 2)


@pytest.mark.parametrize(
    "env, extra",
    [
        ("CartPole-v1", ["algo.num_steps=32", "total_timesteps=256"]),
        ("Pendulum-v1", ["algo.num_steps=64", "total_timesteps=512"]),
        ("Hopper-v4", ["algo.num_steps=64", "algo.num_minibatches=4", "total_timesteps=128"]),
        ("FrozenLake-v1", ["algo.num_steps=32", "total_timesteps=64"]),
    ],
)
def test_ppo_smoke(train_run, tmp_path, env, extra):
    result = train_run([f"env={env}", *TINY, *extra], tmp_path)
    assert result.global_step >= int(extra[-1].split("=")[1])
    assert math.isfinite(result.final_eval_return)
    metrics = read_metrics(tmp_path)
    keys = set().union(*metrics)
    for key in ("train/policy_loss", "train/value_loss", "train/approx_kl", "train/clip_frac", "train/entropy",
                "train/explained_variance", "train/grad_norm", "train/lr", "time/sps", "eval/return_mean",
                "eval/return_std"):
        assert key in keys, key
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


def test_target_kl_stops_epochs_early(train_run, tmp_path):
    train_run(["algo.target_kl=1e-9", "algo.num_steps=64", "total_timesteps=512", *TINY], tmp_path)
    updates = [m["train/updates"] for m in read_metrics(tmp_path) if "train/updates" in m]
    assert updates and all(u < 16 for u in updates)  # 4 epochs x 4 minibatches without the stop


def test_the_minibatch_that_crosses_target_kl_is_not_stepped(train_run, tmp_path):
    # The first minibatch of an update sees the old policy (KL 0) and steps; the second one's
    # KL already exceeds 1e-12, so it ends the update unstepped: exactly one step per update.
    train_run(["algo.target_kl=1e-12", "algo.num_steps=64", "total_timesteps=512", *TINY], tmp_path)
    metrics = [m for m in read_metrics(tmp_path) if "train/updates" in m]
    assert metrics and all(m["train/updates"] == 1 and m["train/early_stop"] == 1 for m in metrics)


def test_same_seed_same_metrics(train_run, tmp_path):
    overrides = ["algo.num_steps=32", "total_timesteps=512", *TINY]
    train_run(overrides, tmp_path / "a")
    train_run(overrides, tmp_path / "b")
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time")} for r in rows]
    assert strip(read_metrics(tmp_path / "a")) == strip(read_metrics(tmp_path / "b"))


@pytest.mark.slow
def test_ppo_learns_cartpole(learn, tmp_path):
    # seeds 0-4 score 449, 490, 498, 447, 389 at 100k steps (random play: about 22)
    learn(["total_timesteps=100000"], tmp_path, 350)
