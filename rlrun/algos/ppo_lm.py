"""PPO for language models with a learnt reward and a per-token KL penalty (RLHF; Ziegler et al. 2019,
Stiennon et al. 2020, Ouyang et al. 2022).

Follows book ch. 15.2 on the synthetic task env=lm, after the pretraining, SFT and
Bradley-Terry reward-model stages of `rlrun.lm.pipeline` (book 15.1, 15.2.7, eq. 15.4):
- a token is an action and prompt + emitted tokens the state (eq. 15.1); responses are sampled
  from softmax(logits / `temperature`) (15.2.9);
- per-token rewards r_k = -β log(π^RL(w_k)/π^SFT(w_k)), plus r̂(x, y) on the last token
  (eqs. 15.7-15.9, β = `kl_coef`, constant or adapted towards `kl_target` per response with
  Ziegler et al.'s controller when `adaptive_kl`), against the frozen SFT reference;
- r̂ is normalised by the running mean and std of all scores so far (`normalize_reward`; the
  book's N(0, 1) reward normalisation of 15.2.9);
- advantages by GAE(γ, λ) over the response (book ch. 5) with γ = 1 by default, so that with
  λ = 1 the returns are the reward-to-go of eq. 15.11; whitened over the batch (`norm_adv`);
- value network V(s_t) on every response position (eq. 15.6), initialised as a copy of the
  reward model (15.2.4), regressed on the returns with the clipped value loss;
- PPO's loss, clipped surrogate and clipped value loss (`rlrun.algos.ppo.ppo_loss`, called by
  name; book ch. 8, Alg. 8.1), over `num_epochs` epochs of `num_minibatches` minibatches of
  whole responses (`rlrun.lm.update.TokenSteps`), plus the PPO-ptx term `ptx_coef` ×
  pretraining NLL (eq. 15.12).
Global step: generated response tokens (`rlrun.lm.pipeline`).
"""

from __future__ import annotations

import numpy as np
import torch

from rlrun.algos.configs import PPOLMConfig
from rlrun.algos.ppo import ppo_loss
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.envs.normalize import RunningMeanStd
from rlrun.lm.pipeline import (
    check_task,
    collect,
    end_iteration,
    make_policy,
    prepare,
    response_values,
)
from rlrun.lm.update import TokenSteps
from rlrun.ops.returns import explained_variance, standardize
from rlrun.ops.rlhf import kl_shaped_rewards, response_advantages
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import anneal_lr


def normalized_scores(scores: torch.Tensor, rms: RunningMeanStd) -> torch.Tensor:
    """(r̂ - mean) / std with the running statistics, updated with `scores` first."""
    rms.update(scores.double().cpu().numpy())
    return (scores - float(rms.mean)) / float(np.sqrt(rms.var + 1e-8))


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: PPOLMConfig = cfg.algo
    task = check_task(cfg)
    score_rms = RunningMeanStd()
    models, coefs, global_step = prepare(cfg, run, task, with_value=True, score_rms=score_rms)
    n = task.prompt_length
    value_clip = algo.clip_coef if algo.clip_vloss else None
    while global_step < cfg.total_timesteps and not run.should_stop:
        for optimizer in models.optimizers:
            lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        rollout = collect(models, task, task.prompts(algo.prompts_per_batch).to(run.device), algo.temperature)
        scores = normalized_scores(rollout.scores, score_rms) if algo.normalize_reward else rollout.scores
        rewards = kl_shaped_rewards(rollout.logprobs, rollout.ref_logprobs, scores, coefs["beta"])
        with torch.no_grad():
            values = response_values(models.value, rollout.tokens, n)
        advantages, returns = response_advantages(rewards, values, algo.gamma, algo.gae_lambda)
        if algo.norm_adv:
            advantages = standardize(advantages)
        update = TokenSteps(models, rollout, task, algo)
        for mb in update.minibatches():
            loss, stats = ppo_loss(mb.logprobs, rollout.logprobs[mb.rows], advantages[mb.rows],
                                   mb.values, values[mb.rows], returns[mb.rows], mb.entropy,
                                   clip_coef=algo.clip_coef, value_clip=value_clip,
                                   vf_coef=algo.vf_coef, ent_coef=algo.ent_coef)
            update.step(loss, stats)
        metrics = update.metrics()
        metrics["train/explained_variance"] = explained_variance(values, returns)
        metrics["train/lr"] = lr
        global_step += rollout.tokens.shape[0] * task.response_length
        end_iteration(cfg, run, task, models, coefs, rollout, metrics, global_step)
    return run.finish(models.policy, global_step)


SPEC = AlgoSpec(name="ppo_lm", config=PPOLMConfig, train=train, make_policy=make_policy, policy_key="policy",
                check_task=check_task)
