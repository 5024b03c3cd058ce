"""PPO with the adaptive KL penalty: the β rule, the loss, smoke runs, checkpointed β, learning."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import TINY_EVAL, read_metrics
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import kl_divergence

from rlrun.algos.ppo_kl import halve_or_double_kl_coef, kl_penalty_loss
from rlrun.ops.distributions import Categorical, DiagGaussian, frozen


@pytest.mark.parametrize(
    "kl, expected",
    [
        (0.5, 0.5),      # d < d_targ / 1.5 = 1.0: halve
        (0.999, 0.5),
        (1.0, 1.0),      # on the lower edge: keep
        (1.8, 1.0),
        (2.25, 1.0),     # on the upper edge 1.5 d_targ: keep
        (2.2501, 2.0),   # d > 1.5 d_targ: double
        (40.0, 2.0),
    ],
)
def test_beta_rule_on_hand_made_kl_values(kl, expected):
    assert halve_or_double_kl_coef(1.0, kl, kl_target=1.5) == expected


def test_beta_rule_over_a_sequence_of_phases():
    beta, history = 1.0, []
    for kl in (0.001, 0.001, 0.05, 0.02, 0.012):  # d_targ = 0.01: bounds 0.00667 and 0.015
        beta = halve_or_double_kl_coef(beta, kl, kl_target=0.01)
        history.append(beta)
    assert history == [0.5, 0.25, 0.5, 1.0, 1.0]


def test_kl_penalty_loss_on_a_hand_example():
    old_logits = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 0.2]])
    new_logits = torch.tensor([[0.3, -0.3], [0.8, -0.6], [0.5, 0.9]])
    old, new = Categorical(old_logits), Categorical(new_logits)
    actions = torch.tensor([0, 1, 1])
    advantages = torch.tensor([1.0, -0.5, 2.0])
    new_values, old_values = torch.tensor([1.0, 2.0, 0.0]), torch.zeros(3)
    returns = torch.tensor([0.0, 2.0, 1.0])
    beta = 3.0
    loss, stats = kl_penalty_loss(new, old, new.log_prob(actions), old.log_prob(actions), advantages,
                                  new_values, old_values, returns, beta=beta, value_clip=None, vf_coef=0.5,
                                  ent_coef=0.01)
    reference_old, reference_new = TorchCategorical(logits=old_logits), TorchCategorical(logits=new_logits)
    ratio = (reference_new.log_prob(actions) - reference_old.log_prob(actions)).exp()
    kl = kl_divergence(reference_old, reference_new).mean()
    expected_policy = -(ratio * advantages).mean() + beta * kl
    expected_value = 0.5 * (1.0 + 0.0 + 1.0) / 3
    expected = expected_policy + 0.5 * expected_value - 0.01 * reference_new.entropy().mean()
    assert math.isclose(float(stats["policy_loss"]), float(expected_policy), rel_tol=1e-5)
    assert math.isclose(float(stats["approx_kl"]), float(kl), rel_tol=1e-5)
    assert math.isclose(float(stats["value_loss"]), expected_value, rel_tol=1e-6)
    assert math.isclose(float(loss), float(expected), rel_tol=1e-5)


def test_frozen_old_policy_ignores_in_place_parameter_updates():
    log_std = torch.nn.Parameter(torch.zeros(1, 2))
    mean = torch.randn(5, 2)
    with torch.no_grad():
        old = frozen(DiagGaussian(mean, log_std))
        log_std.add_(0.5)  # an optimizer step
        assert torch.equal(old.log_std, torch.zeros(5, 2))
        assert float(old.kl(DiagGaussian(mean, log_std)).mean()) > 0.0


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_smoke_and_beta_is_checkpointed(train_run, tmp_path, env):
    overrides = ["algo=ppo_kl", f"env={env}", "algo.num_steps=32", "total_timesteps=512", *TINY_EVAL]
    result = train_run(overrides, tmp_path)
    assert result.global_step == 512  # classic preset: 4 envs x 32 steps per update
    assert math.isfinite(result.final_eval_return)
    rows = read_metrics(tmp_path)
    keys = set().union(*rows)
    for key in ("train/beta", "train/kl", "train/policy_loss", "train/surrogate", "train/value_loss",
                "train/entropy", "train/approx_kl", "train/explained_variance", "train/lr",
                "eval/return_mean"):
        assert key in keys, key
    train_rows = [row for row in rows if "train/beta" in row]
    assert train_rows[0]["train/beta"] == 1.0
    for before, after in itertools.pairwise(train_rows):  # each phase's β follows the rule
        assert after["train/beta"] == halve_or_double_kl_coef(before["train/beta"], before["train/kl"], 0.01)
    last = train_rows[-1]
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["modules"]["coefs"]["beta"] == halve_or_double_kl_coef(last["train/beta"], last["train/kl"], 0.01)


def test_resume_continues_steps_and_beta(train_run, tmp_path):
    base = ["algo=ppo_kl", "algo.num_steps=32", "algo.beta_init=64", *TINY_EVAL]
    train_run([*base, "total_timesteps=256"], tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    saved_beta = checkpoint["modules"]["coefs"]["beta"]
    assert saved_beta != 64.0  # it adapted (the KL of one phase is far from the target at β = 64)
    result = train_run([*base, "total_timesteps=512"], tmp_path)
    assert result.global_step == 512
    rows = [row for row in read_metrics(tmp_path) if "train/beta" in row]
    assert [row["step"] for row in rows] == [128, 256, 384, 512]
    assert rows[2]["train/beta"] == saved_beta


def test_target_kl_stops_epochs_early(train_run, tmp_path):
    overrides = ["algo=ppo_kl", "algo.target_kl=1e-9", "algo.num_steps=64", "total_timesteps=512"]
    train_run([*overrides, *TINY_EVAL], tmp_path)
    updates = [row["train/updates"] for row in read_metrics(tmp_path) if "train/updates" in row]
    assert updates and all(u < 16 for u in updates)  # 4 epochs x 4 minibatches without the stop


@pytest.mark.slow
def test_ppo_kl_learns_cartpole(learn, tmp_path):
    # seeds 0-4 score 498, 500, 489, 500, 500 at 100k steps
    learn(["algo=ppo_kl", "total_timesteps=100000"], tmp_path, 450)
