"""RL for language models (ppo_lm, grpo on env=lm): reward math on hand examples, the task, the
network, the reward model, smoke and resume runs, refusals, learning, and the hf_lm path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import read_metrics

from rlrun.cli import train_command as cli
from rlrun.config import ConfigError, HFNetworkConfig, LMNetworkConfig, OptimizerConfig
from rlrun.lm.pipeline import (
    preference_pairs,
    reward_model_accuracy,
    token_logprobs,
    train_reward_model,
)
from rlrun.lm.task import LMTask, LMTaskConfig
from rlrun.networks.lm import generate, make_token_policy, make_token_scorer
from rlrun.ops.rlhf import (
    group_advantages,
    kl_k3,
    kl_shaped_rewards,
    proportional_kl_coef,
    response_advantages,
)
from rlrun.training.optim import make_optimizer

# A tiny model and short stages: a whole run takes seconds on one core.
TINY = ["env=lm", "network.width=32", "network.layers=1", "network.heads=2", "algo.pretrain_steps=200",
        "algo.sft_steps=150", "algo.rm_pairs=512", "algo.rm_steps=150", "algo.num_epochs=2",
        "algo.num_minibatches=2", "eval.every_steps=0", "eval.episodes=256", "eval.deterministic=false"]
SMOKE = ["env=lm", "network.width=16", "network.layers=1", "network.heads=2", "algo.pretrain_steps=20",
         "algo.sft_steps=20", "algo.rm_pairs=64", "algo.rm_steps=10", "algo.prompts_per_batch=8",
         "algo.num_epochs=1", "algo.num_minibatches=2", "algo.sample_every=1", "eval.every_steps=0",
         "eval.episodes=16"]


def iteration_rows(run_dir):
    """The RL iterations' metrics without the timings."""
    return [{k: v for k, v in m.items() if not k.startswith("time")}
            for m in read_metrics(run_dir) if "train/kl_ref" in m]


# ----- reward math ------------------------------------------------------------------------------
def test_kl_shaped_rewards_on_a_hand_example():
    logprobs = torch.log(torch.tensor([[0.5, 0.25, 0.8], [0.1, 0.9, 0.5]]))
    ref_logprobs = torch.log(torch.tensor([[0.25, 0.25, 0.4], [0.2, 0.3, 0.5]]))
    scores = torch.tensor([2.0, -1.0])
    rewards = kl_shaped_rewards(logprobs, ref_logprobs, scores, beta=0.5)
    # r_k = -β log(π/π_ref), plus r̂ on the last token (eq. 15.8): log 2 = 0.6931, log 3 = 1.0986
    expected = torch.tensor([[-0.5 * math.log(2), 0.0, 2.0 - 0.5 * math.log(2)],
                             [0.5 * math.log(2), -0.5 * math.log(3), -1.0]])
    torch.testing.assert_close(rewards, expected)


def test_reward_to_go_with_gamma_one_is_eq_15_11():
    logprobs = torch.log(torch.tensor([[0.5, 0.2, 0.9, 0.6]]))
    ref_logprobs = torch.log(torch.tensor([[0.25, 0.4, 0.3, 0.6]]))
    beta, score = 0.2, 1.5
    rewards = kl_shaped_rewards(logprobs, ref_logprobs, torch.tensor([score]), beta)
    values = torch.tensor([[0.3, -0.2, 0.5, 1.0]])
    advantages, returns = response_advantages(rewards, values, gamma=1.0, lam=1.0)
    log_ratios = [math.log(0.5 / 0.25), math.log(0.2 / 0.4), math.log(0.9 / 0.3), 0.0]
    # G(τ_t) = r̂ - β Σ_{k>=t} log(π/π_SFT) (eq. 15.11 with the penalty scaled by β)
    expected = [score - beta * sum(log_ratios[t:]) for t in range(4)]
    torch.testing.assert_close(returns, torch.tensor([expected]))
    torch.testing.assert_close(advantages, torch.tensor([expected]) - values)


def test_response_advantages_td_and_discounted_cases():
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 0.5]])
    values = torch.tensor([[0.5, 1.0, 1.5], [0.2, 0.0, -0.3]])
    # λ = 0: one-step TD errors; the last token has no successor (the response ends there)
    advantages, _ = response_advantages(rewards, values, gamma=0.9, lam=0.0)
    expected = torch.tensor([[1.0 + 0.9 * 1.0 - 0.5, 0.0 + 0.9 * 1.5 - 1.0, 2.0 - 1.5],
                             [0.0 + 0.9 * 0.0 - 0.2, -1.0 + 0.9 * -0.3 - 0.0, 0.5 + 0.3]])
    torch.testing.assert_close(advantages, expected)
    _, returns = response_advantages(rewards, values, gamma=0.5, lam=1.0)
    torch.testing.assert_close(returns, torch.tensor([[1.5, 1.0, 2.0], [-0.375, -0.75, 0.5]]))


@pytest.mark.parametrize("kl, expected", [(2.0, 1.0), (4.0, 1.02), (100.0, 1.02), (1.8, 0.99), (0.0, 0.98)])
def test_adaptive_kl_coef(kl, expected):
    assert math.isclose(proportional_kl_coef(1.0, kl, kl_target=2.0), expected, rel_tol=1e-9)


def test_group_advantages_and_k3():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    torch.testing.assert_close(group_advantages(scores, 3), torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
                               atol=1e-5, rtol=0)
    logprobs, ref_logprobs = torch.log(torch.tensor([0.5, 0.3])), torch.log(torch.tensor([0.25, 0.3]))
    # π_ref/π - log(π_ref/π) - 1: 0.5 - log 0.5 - 1 and 0
    torch.testing.assert_close(kl_k3(logprobs, ref_logprobs), torch.tensor([math.log(2) - 0.5, 0.0]))


# ----- the task and the network --------------------------------------------------------------------
def test_task_formats_and_true_rewards():
    task = LMTask(LMTaskConfig(vocab_size=5, prompt_length=4, response_length=4, corpus="arith", noise=0.0))
    demos = task.demonstrations(32)
    assert demos.shape == (32, 8) and (demos[:, 3] == task.sep).all() and (demos[:, :3] < 5).all()
    source = torch.cat([demos[:, :3], demos[:, 4:]], 1)
    steps = (source[:, 1:] - source[:, :-1]) % 5  # noise 0: one constant step per sequence
    assert ((steps == steps[:, :1]) & (steps[:, :1] >= 1) & (steps[:, :1] <= 3)).all()
    prompts = task.prompts(16)
    assert prompts.shape == (16, 4) and (prompts[:, -1] == task.sep).all()
    responses = torch.tensor([[0, 0, 1, 0], [1, 2, 2, 4], [4, 3, 2, 1]])
    torch.testing.assert_close(task.true_reward(responses), torch.tensor([0.75, 0.0, 0.0]))
    sorted_task = LMTask(LMTaskConfig(vocab_size=5, prompt_length=4, response_length=4, preference="sorted"))
    torch.testing.assert_close(sorted_task.true_reward(responses), torch.tensor([2 / 3, 1.0, 0.0]))
    assert task.render(torch.tensor([0, 1, 5, 4])) == "ab|e"


def test_markov_chain_follows_its_successors():
    task = LMTask(LMTaskConfig(vocab_size=8, branching=2, noise=0.0, seed=3))
    torch.testing.assert_close(task.transitions.sum(1), torch.ones(8))
    assert ((task.transitions > 0).sum(1) == 2).all()
    text = task.text(64, 12)
    assert (task.transitions[text[:, :-1], text[:, 1:]] > 0).all()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"vocab_size": 1}, "vocab_size"), ({"corpus": "zipf"}, "corpus"), ({"target_token": 8}, "target_token"),
     ({"colour": 1}, "colour"), ({"noise": "high"}, "noise"), ({"prompt_length": 2.5}, "prompt_length")],
)
def test_task_kwargs_are_checked(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        LMTaskConfig.from_kwargs(kwargs)


def test_transformer_is_causal_and_logprobs_match_generation():
    torch.manual_seed(0)
    policy = make_token_policy(LMNetworkConfig(width=16, layers=2, heads=4), 9, 12, temperature=0.7)
    tokens = torch.randint(9, (3, 12))
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 9
    torch.testing.assert_close(policy(tokens)[:, :7], policy(changed)[:, :7])  # no look-ahead
    assert not torch.allclose(policy(tokens)[:, 7:], policy(changed)[:, 7:])
    prompts = tokens[:, :5]
    assert torch.equal(generate(policy, prompts, 1, 0.7, greedy=True)[:, 0], policy.act(prompts))
    full = torch.cat([prompts, generate(policy, prompts, 4, 0.7)], 1)
    logprobs, entropy = token_logprobs(policy, full, 5, 0.7)
    for t in range(4):  # the same log-probs, one prefix at a time
        step = torch.log_softmax(policy(full[:, : 5 + t])[:, -1] / 0.7, -1)
        torch.testing.assert_close(logprobs[:, t], step.gather(1, full[:, 5 + t, None])[:, 0])
        torch.testing.assert_close(entropy[:, t], -(step.exp() * step).sum(-1))


@pytest.mark.slow
def test_bradley_terry_reward_model_learns_the_preference():
    torch.manual_seed(0)
    task = LMTask(LMTaskConfig(preference="target"))
    network = LMNetworkConfig(width=32, layers=1, heads=2)
    policy = make_token_policy(network, task.vocab_size, task.context_length)  # untrained: near-uniform samples
    reward_model = make_token_scorer(network, task.vocab_size, task.context_length)
    pairs = preference_pairs(task, policy, 1280, 1.0, torch.device("cpu"))
    train_pairs, held_out = pairs.split(1024 * len(pairs.labels) // 1280)
    before = reward_model_accuracy(reward_model, held_out)
    optimizer = make_optimizer(reward_model.parameters(), OptimizerConfig(lr=1e-3))
    train_reward_model(reward_model, optimizer, train_pairs, steps=300, batch_size=64, max_grad_norm=1.0)
    accuracy = reward_model_accuracy(reward_model, held_out)
    assert accuracy > 0.8 and accuracy > before + 0.2, (before, accuracy)


# ----- runs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["ppo_lm", "grpo"])
def test_smoke_checkpoint_and_exact_resume(train_run, tmp_path, algo):
    result = train_run([f"algo={algo}", *SMOKE, "deterministic=true", "total_timesteps=256"], tmp_path)
    assert result.global_step == 256 and math.isfinite(result.final_eval_return)
    metrics = read_metrics(tmp_path)
    keys = set().union(*metrics)
    for key in ("train/reward", "train/true_reward", "train/kl_ref", "train/entropy", "train/beta",
                "train/policy_loss", "train/approx_kl", "train/rm_accuracy", "train/sft_true_reward",
                "eval/return_mean"):
        assert key in keys, key
    assert ("train/value_loss" in keys) == (algo == "ppo_lm")
    assert "samples at step" in (tmp_path / "samples.txt").read_text()
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    expected = {"policy", "reference", "reward_model", "policy_optimizer", "coefs"}
    expected |= {"value", "value_optimizer", "score_rms"} if algo == "ppo_lm" else set()
    assert set(state["modules"]) == expected
    resumed = train_run([f"algo={algo}", *SMOKE, "deterministic=true", "total_timesteps=512"], tmp_path)
    assert resumed.global_step == 512
    stage_rows = [m for m in read_metrics(tmp_path) if "train/rm_accuracy" in m]
    assert len(stage_rows) == 1  # stages 1-3 ran once; the resumed run loaded their results
    train_run([f"algo={algo}", *SMOKE, "deterministic=true", "total_timesteps=512"], tmp_path / "straight")
    assert iteration_rows(tmp_path) == iteration_rows(tmp_path / "straight")  # resumed exactly


def test_reference_stays_frozen_and_adaptive_beta_moves(train_run, tmp_path):
    # KL per response far below the target: the error is clipped at -0.2, so β shrinks by 2% per iteration
    train_run(["algo=ppo_lm", *SMOKE, "algo.adaptive_kl=true", "algo.kl_target=1e6", "total_timesteps=192"],
              tmp_path)
    betas = [m["train/beta"] for m in read_metrics(tmp_path) if "train/beta" in m]
    assert betas == pytest.approx([0.1, 0.098, 0.09604])
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["modules"]
    assert any(not torch.equal(state["policy"][k], state["reference"][k]) for k in state["policy"])
    assert state["coefs"]["beta"] == pytest.approx(0.1 * 0.98**3)


@pytest.mark.parametrize(
    "overrides, fragment",
    [(["algo=ppo", "env=lm"], "algo=ppo_lm and algo=grpo"),
     (["algo=ppo_lm", "env=CartPole-v1"], "use env=lm"),
     (["algo=grpo", "env=lm", "network=mlp"], "network=lm or network=hf_lm"),
     (["algo=ppo_lm", "env=lm", "network=hf_lm"], "network.path"),
     (["algo=ppo_lm", "env=lm", "+env.kwargs.colour=1"], "env.kwargs.colour"),
     (["algo=grpo", "env=lm", "algo.num_minibatches=65"], "algo.num_minibatches")],
)
def test_cli_validation_refuses_mismatches(compose_cfg, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        cli.validate_train(compose_cfg(overrides))


def test_lm_preset_applies(compose_cfg):
    cfg = compose_cfg(["algo=ppo_lm", "env=lm"])
    assert (cfg.env.family, cfg.network.name, cfg.total_timesteps, cfg.eval.episodes) == ("lm", "lm", 51200, 256)
    cfg = compose_cfg(["algo=grpo", "env=lm", "network=hf_lm", "network.path=/x", "algo.group_size=8"])
    assert (cfg.network.name, cfg.network.path, cfg.algo.group_size) == ("hf_lm", "/x", 8)
    cli.validate_train(compose_cfg(["algo=ppo_lm", "env=lm"]))


@pytest.mark.slow
def test_ppo_lm_raises_true_reward_within_kl_bound(train_run, tmp_path):
    result = train_run(["algo=ppo_lm", *TINY, "algo.prompts_per_batch=32", "total_timesteps=12800"], tmp_path)
    metrics = read_metrics(tmp_path)
    sft = next(m["train/sft_true_reward"] for m in metrics if "train/sft_true_reward" in m)
    kl_ref = np.mean([m["train/kl_ref"] for m in metrics if "train/kl_ref" in m][-5:])
    assert result.final_eval_return > sft + 0.12, (sft, result.final_eval_return)
    assert kl_ref < 8.0, kl_ref


@pytest.mark.slow
def test_grpo_raises_true_reward(train_run, tmp_path):
    result = train_run(["algo=grpo", *TINY, "algo.prompts_per_batch=8", "total_timesteps=12800"], tmp_path)
    metrics = read_metrics(tmp_path)
    sft = next(m["train/sft_true_reward"] for m in metrics if "train/sft_true_reward" in m)
    kl_ref = np.mean([m["train/kl_ref"] for m in metrics if "train/kl_ref" in m][-5:])
    assert result.final_eval_return > sft + 0.12, (sft, result.final_eval_return)
    assert kl_ref < 20.0, kl_ref


# ----- a local Hugging Face model ---------------------------------------------------------------
@pytest.mark.slow
def test_hf_lm_path_with_a_tiny_local_gpt2(train_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=12, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(tmp_path / "gpt2")
    network = HFNetworkConfig(path=str(tmp_path / "gpt2"))
    policy = make_token_policy(network, vocab_size=9, context_length=16).eval()
    tokens = torch.randint(9, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(policy(tokens), model(tokens).logits[..., :9])  # the local weights, cut to the task
    scorer = make_token_scorer(network, vocab_size=9, context_length=16)
    assert scorer(tokens).shape == (2, 16)
    smoke = [o for o in SMOKE if not o.startswith("network.")]  # the transformer's sizes are network=lm's
    result = train_run(["algo=ppo_lm", *smoke, "network=hf_lm", f"network.path={tmp_path / 'gpt2'}",
                        "total_timesteps=128"], tmp_path / "run")
    assert result.global_step == 128 and math.isfinite(result.final_eval_return)
    with pytest.raises(ConfigError, match="positions"):
        make_token_policy(network, vocab_size=9, context_length=64)
