"""The pipeline of RL for language models shared by algo=ppo_lm and algo=grpo (book ch. 14-15).

On a fresh run, before RL, the three stages of book 15.1 and 15.2.7 run on env=lm
(rlrun/lm/task.py); a resumed run loads their results from the checkpoint instead:
1. pretraining: next-token cross-entropy on the synthetic corpus (`pretrain_steps`);
2. supervised fine-tuning on prompt -> response demonstrations, the loss on the response
   tokens only (`sft_steps`). The result is π^SFT: the frozen reference of the per-token KL
   penalty (15.2.5) and the start of π^RL (15.2.7, step 5). RL then starts with fresh
   optimizer moments at `optimizer.lr`;
3. reward model r̂(x, y): the SFT torso with a scalar head (15.2.3), trained with the
   Bradley-Terry loss of eq. 15.4 on pairs of responses to one prompt (15.2.7, steps 2-4).
   Responses are SFT samples at `temperature` or random skewed ones, half and half; the
   synthetic annotator labels each pair, ties are dropped (no "equal" in LLM preferences,
   15.2.2). A quarter as many pairs again are held out for `train/rm_accuracy`. The value
   network of ppo_lm starts as a copy of r̂ (15.2.4).
Then the algorithm's RL loop uses the helpers below: `collect` samples responses at
`temperature` (15.2.9) and scores them, `rlrun.lm.update.TokenSteps` hands the algorithm the
minibatches of its update and steps on the algorithm's loss plus the optional PPO-ptx term,
`end_iteration` adapts β, logs, writes samples, evaluates and checkpoints.

Global step: generated response tokens of the RL stage (each token is one action, eq. 15.1);
`total_timesteps` budgets them. Stages 1-3 log their results at step 0, with
`train/sft_true_reward`, the SFT policy measured like `eval/return_mean`.
Evaluation (`run.use_evaluator`): the mean true reward of responses to `eval.episodes`
held-out prompts (seeded by the task seed + `eval.seed_offset`, one response each), greedy
with `eval.deterministic`, else sampled at `temperature` with the same random numbers each time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from rlrun.algos.configs import LMConfig
from rlrun.config import ConfigError, TrainConfig
from rlrun.lm.task import LMTask, LMTaskConfig
from rlrun.networks.lm import (
    TokenPolicy,
    TokenScorer,
    generate,
    make_token_policy,
    make_token_scorer,
    response_logits,
)
from rlrun.ops.preferences import bradley_terry_loss, preference_accuracy, preference_probability
from rlrun.ops.rlhf import proportional_kl_coef
from rlrun.run.eval_episodes import EvalResult
from rlrun.run.facade import Run, Scalars, Stateful
from rlrun.training.optim import FlatOptimizer, make_optimizer, set_lr
from rlrun.training.steps import gradient_step


# ----- set-up ---------------------------------------------------------------------------------
def check_task(cfg: TrainConfig, responses_per_prompt: int = 1) -> LMTask:
    """Refuse configs the LM pipeline cannot run (one line naming the fix); returns the task."""
    name = cfg.algo.name
    if cfg.env.family != "lm":
        raise ConfigError(f"algo={name} trains language models on the in-process task env=lm, not on "
                          f"env={cfg.env.id}; use env=lm")
    if cfg.network.name not in ("lm", "hf_lm"):
        raise ConfigError(f"algo={name} needs network=lm or network=hf_lm, not network={cfg.network.name}")
    if cfg.network.name == "hf_lm" and not (cfg.network.path and Path(cfg.network.path).is_dir()):
        raise ConfigError(f"network=hf_lm needs network.path=<local Hugging Face model dir>, got {cfg.network.path}")
    responses = cfg.algo.prompts_per_batch * responses_per_prompt
    if responses // cfg.algo.num_minibatches < 1:
        raise ConfigError(f"algo.num_minibatches={cfg.algo.num_minibatches} exceeds the {responses} responses "
                          "per iteration; lower it or raise algo.prompts_per_batch")
    return LMTask(LMTaskConfig.from_kwargs(cfg.env.kwargs))


def make_policy(cfg: TrainConfig, obs_space: gym.Space | None = None, action_space: gym.Space | None = None
                ) -> TokenPolicy:
    """The policy network for `cfg` (the spaces are unused: the task sets vocabulary and context)."""
    task = LMTask(LMTaskConfig.from_kwargs(cfg.env.kwargs))
    return make_token_policy(cfg.network, task.vocab_size, task.context_length, cfg.algo.temperature)


@dataclass
class LMModels:
    """The networks of the RL stage and their optimizers."""

    policy: TokenPolicy
    """π^RL, trained."""
    reference: TokenPolicy
    """π^SFT, frozen: the reference of the KL penalty."""
    reward_model: TokenScorer
    """r̂(x, y), frozen after stage 3."""
    value: TokenScorer | None
    """V(s_t) (ppo_lm), or None (grpo)."""
    optimizers: list[FlatOptimizer]
    """The policy's optimizer, then the value network's if any."""


def prepare(
    cfg: TrainConfig, run: Run, task: LMTask, with_value: bool, **extra: Stateful
) -> tuple[LMModels, Scalars, int]:
    """Build and track the networks (and `extra` state), restore or run stages 1-3; returns the step.

    Tracked under: policy, reference, reward_model, value, policy_optimizer, value_optimizer,
    coefs (β), and the names in `extra`.
    """
    algo: LMConfig = cfg.algo
    device = run.device
    sizes = (task.vocab_size, task.context_length)
    policy = make_token_policy(cfg.network, *sizes, algo.temperature).to(device)
    reference = make_token_policy(cfg.network, *sizes, algo.temperature).to(device).requires_grad_(False)
    reward_model = make_token_scorer(cfg.network, *sizes).to(device)
    value = make_token_scorer(cfg.network, *sizes).to(device) if with_value else None
    optimizers = [make_optimizer(policy.parameters(), cfg.optimizer)]
    coefs = Scalars(beta=algo.kl_coef)
    run.track(policy=policy, reference=reference, reward_model=reward_model, policy_optimizer=optimizers[0],
              coefs=coefs, **extra)
    if value is not None:
        optimizers.append(make_optimizer(value.parameters(), cfg.optimizer))
        run.track(value=value, value_optimizer=optimizers[1])
    models = LMModels(policy, reference, reward_model, value, optimizers)
    global_step = run.restore()
    run.use_evaluator(make_evaluator(cfg, task, device))
    if global_step == 0:
        stages = run_stages(cfg, run, task, models)
        run.stop_if_signalled("during the supervised stages, before the first iteration")
        run.log(stages, 0)
    reference.eval()
    reward_model.requires_grad_(False).eval()
    return models, coefs, global_step


# ----- stages 1-3 -------------------------------------------------------------------------------
def lm_loss(policy: TokenPolicy, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Mean next-token cross-entropy of tokens[:, start + 1:] given their prefixes (nats per token)."""
    logits = policy(tokens[:, :-1])[:, start:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, start + 1 :].reshape(-1))


def supervised_steps(optimizer: FlatOptimizer, steps: int, loss_fn: Callable[[], torch.Tensor], max_grad_norm: float,
        stop: Callable[[], bool] = lambda: False) -> float:
    """`steps` gradient steps on `loss_fn()` (fewer once `stop()` says so); returns the mean loss
    of the last tenth of them."""
    losses = []
    for _ in range(steps):
        if stop():
            break
        loss = loss_fn()
        gradient_step(optimizer, loss, max_grad_norm)
        losses.append(loss.detach())
    return float(torch.stack(losses[-max(1, steps // 10) :]).mean()) if losses else float("nan")


@dataclass
class PreferencePairs:
    """Prompt + response token sequences y0 and y1 with labels b (1: y1 preferred), eq. 15.4."""

    tokens0: torch.Tensor
    tokens1: torch.Tensor
    labels: torch.Tensor

    def split(self, count: int) -> tuple[PreferencePairs, PreferencePairs]:
        """The first `count` pairs and the rest."""
        head = PreferencePairs(self.tokens0[:count], self.tokens1[:count], self.labels[:count])
        return head, PreferencePairs(self.tokens0[count:], self.tokens1[count:], self.labels[count:])


def preference_pairs(
    task: LMTask, policy: TokenPolicy, count: int, temperature: float, device: torch.device
) -> PreferencePairs:
    """`count` prompts, two responses each (a policy sample or a random skewed one, half and half),
    labelled by the synthetic annotator; tied pairs are dropped."""
    prompts = task.prompts(count).to(device)

    def responses() -> torch.Tensor:
        sampled = generate(policy, prompts, task.response_length, temperature)
        random = task.random_responses(count).to(device)
        return torch.where(torch.rand(count, 1, device=device) < 0.5, sampled, random)

    responses0, responses1 = responses(), responses()
    rewards0, rewards1 = task.true_reward(responses0), task.true_reward(responses1)
    keep = rewards0 != rewards1
    return PreferencePairs(torch.cat([prompts, responses0], 1)[keep], torch.cat([prompts, responses1], 1)[keep],
                           (rewards1 > rewards0).float()[keep])


def train_reward_model(
    reward_model: TokenScorer, optimizer: FlatOptimizer, pairs: PreferencePairs, steps: int, batch_size: int,
    max_grad_norm: float, stop: Callable[[], bool] = lambda: False,
) -> float:
    """Bradley-Terry training (eq. 15.4) on random minibatches of `pairs`; returns the final loss.

    Eq. 15.4 is eq. 14.7 with whole responses for segments: σ¹ = y1, R¹ = r̂(x, y1), μ(1) = b.
    """

    def loss_fn() -> torch.Tensor:
        mb = torch.randint(len(pairs.labels), (batch_size,), device=pairs.labels.device)
        return bradley_terry_loss(reward_model.score(pairs.tokens1[mb]), reward_model.score(pairs.tokens0[mb]),
                                  pairs.labels[mb])

    return supervised_steps(optimizer, steps, loss_fn, max_grad_norm, stop)


@torch.no_grad()
def reward_model_accuracy(reward_model: TokenScorer, pairs: PreferencePairs) -> float:
    """Share of pairs whose preferred response r̂ scores higher."""
    probabilities = preference_probability(reward_model.score(pairs.tokens1), reward_model.score(pairs.tokens0))
    return float(preference_accuracy(probabilities, pairs.labels))


def run_stages(cfg: TrainConfig, run: Run, task: LMTask, models: LMModels) -> dict[str, float]:
    """Stages 1-3 on a fresh run; returns their metrics (logged at step 0)."""
    algo: LMConfig = cfg.algo
    policy, device, batch = models.policy, run.device, algo.supervised_batch_size
    policy_optimizer = models.optimizers[0]
    stop = lambda: run.should_stop
    fresh_state = copy.deepcopy(policy_optimizer.state_dict())
    set_lr(policy_optimizer, algo.supervised_lr)
    metrics = {}
    if algo.pretrain_steps:
        metrics["train/pretrain_loss"] = supervised_steps(
            policy_optimizer, algo.pretrain_steps,
            lambda: lm_loss(policy, task.text(batch, task.context_length).to(device)), algo.max_grad_norm, stop)
    if algo.sft_steps:
        metrics["train/sft_loss"] = supervised_steps(
            policy_optimizer, algo.sft_steps,
            lambda: lm_loss(policy, task.demonstrations(batch).to(device), task.prompt_length - 1),
            algo.max_grad_norm, stop)
    policy_optimizer.load_state_dict(fresh_state)
    models.reference.load_state_dict(policy.state_dict())

    reward_model = models.reward_model
    reward_model.torso.load_state_dict(policy.torso.state_dict())
    pairs = preference_pairs(task, policy, algo.rm_pairs + algo.rm_pairs // 4, algo.temperature, device)
    train_pairs, held_out = pairs.split(len(pairs.labels) * 4 // 5)
    rm_optimizer = make_optimizer(reward_model.parameters(), replace(cfg.optimizer, lr=algo.rm_lr))
    metrics["train/rm_loss"] = train_reward_model(reward_model, rm_optimizer, train_pairs, algo.rm_steps,
                                                  algo.rm_batch_size, algo.max_grad_norm, stop)
    metrics["train/rm_accuracy"] = reward_model_accuracy(reward_model, held_out)
    if models.value is not None:
        models.value.load_state_dict(reward_model.state_dict())
    metrics["train/sft_true_reward"] = run.evaluate(policy).mean
    run.logger.message(
        "stages 1-3: " + ", ".join(f"{key.removeprefix('train/')} {value:.3f}" for key, value in metrics.items())
    )
    return metrics


# ----- RL stage -------------------------------------------------------------------------------
@dataclass
class Rollout:
    """Responses to a batch of prompts, as sampled, with what RL needs of them."""

    tokens: torch.Tensor
    """Prompt and response tokens, [B, n + m]."""
    logprobs: torch.Tensor
    """log π^RL of the response tokens at the sampling temperature, [B, m]."""
    ref_logprobs: torch.Tensor
    """log π^SFT of the same tokens at the same temperature, [B, m]."""
    scores: torch.Tensor
    """Reward-model scores r̂(x, y), [B]."""
    true_rewards: torch.Tensor
    """The synthetic property of each response (never shown to RL), [B]."""

    @property
    def kl_ref(self) -> torch.Tensor:
        """Σ_t log(π^RL/π^SFT) per response [B]: a sample of KL(π^RL || π^SFT) in nats per response."""
        return (self.logprobs - self.ref_logprobs).sum(1)


def token_logprobs(
    policy: TokenPolicy, tokens: torch.Tensor, prompt_length: int, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """log softmax(logits / T) of the response tokens and the entropy of that distribution, each [B, m]."""
    log_probs = F.log_softmax(response_logits(policy, tokens, prompt_length) / temperature, -1)
    logprobs = log_probs.gather(-1, tokens[:, prompt_length:].unsqueeze(-1)).squeeze(-1)
    return logprobs, -(log_probs.exp() * log_probs).sum(-1)


def response_values(value: TokenScorer, tokens: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """V(s_t) [B, m] of the states before each response token, s_t = prompt + t response tokens."""
    return value(tokens[:, :-1])[:, prompt_length - 1 :]


@torch.no_grad()
def collect(models: LMModels, task: LMTask, prompts: torch.Tensor, temperature: float) -> Rollout:
    """Sample one response per prompt row at `temperature` and score it."""
    responses = generate(models.policy, prompts, task.response_length, temperature)
    tokens = torch.cat([prompts, responses], 1)
    logprobs, _ = token_logprobs(models.policy, tokens, task.prompt_length, temperature)
    ref_logprobs, _ = token_logprobs(models.reference, tokens, task.prompt_length, temperature)
    return Rollout(tokens, logprobs, ref_logprobs, models.reward_model.score(tokens), task.true_reward(responses))


def end_iteration(
    cfg: TrainConfig, run: Run, task: LMTask, models: LMModels, coefs: Scalars, rollout: Rollout,
    metrics: dict[str, float], global_step: int,
) -> None:
    """Log the iteration, adapt β, write samples every `sample_every` iterations, evaluate, checkpoint."""
    algo: LMConfig = cfg.algo
    kl_ref = float(rollout.kl_ref.mean())
    metrics.update({
        "train/reward": float(rollout.scores.mean()),
        "train/true_reward": float(rollout.true_rewards.mean()),
        "train/kl_ref": kl_ref,
        "train/beta": coefs["beta"],
    })
    if algo.adaptive_kl:
        coefs["beta"] = proportional_kl_coef(coefs["beta"], kl_ref, algo.kl_target)
    run.log(metrics, global_step)
    iteration = global_step // (len(rollout.tokens) * task.response_length)
    if algo.sample_every and iteration % algo.sample_every == 0:
        write_samples(run, task, rollout, global_step)
    run.maybe_evaluate(models.policy, global_step)
    run.maybe_checkpoint(global_step)


def write_samples(run: Run, task: LMTask, rollout: Rollout, global_step: int, count: int = 4) -> None:
    """The first `count` generations with their true reward and r̂, on the console and in samples.txt."""
    lines = [f"  {task.render(tokens)}  true {true:.2f}  rm {score:+.2f}"
             for tokens, true, score in zip(rollout.tokens[:count].cpu(), rollout.true_rewards.tolist(),
                                            rollout.scores.tolist())]
    text = f"samples at step {global_step} (prompt|response):\n" + "\n".join(lines)
    run.logger.message(text)
    run.append_text("samples.txt", text)


def make_evaluator(cfg: TrainConfig, task: LMTask, device: torch.device) -> Callable[[TokenPolicy], EvalResult]:
    """The eval protocol of env=lm: true rewards of responses to fixed held-out prompts."""
    seed = task.cfg.seed + cfg.eval.seed_offset
    prompts = task.prompts(cfg.eval.episodes, torch.Generator().manual_seed(seed)).to(device)
    lengths = np.full(cfg.eval.episodes, task.response_length)

    def evaluate(policy: TokenPolicy) -> EvalResult:
        generator = torch.Generator(device=device).manual_seed(seed)
        responses = generate(policy, prompts, task.response_length, policy.temperature,
                             greedy=cfg.eval.deterministic, generator=generator)
        return EvalResult(task.true_reward(responses).double().cpu().numpy(), lengths)

    return evaluate
