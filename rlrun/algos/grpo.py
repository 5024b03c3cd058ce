"""Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, section 4.1), outcome supervision.

On the pipeline of `rlrun.lm.pipeline` (book ch. 15: pretraining, SFT, Bradley-Terry reward
model of eq. 15.4; GRPO is named in book 15.1 and 15.2.7 as PPO's alternative):
- no value network: each prompt gets `group_size` responses sampled at `temperature`, and
  every token of response i gets the advantage Â_i = (r_i - mean(r_group)) / std(r_group)
  with r_i = r̂(x, y_i) (Shao et al. section 4.1.2);
- PPO's clipped surrogate (`rlrun.ops.clipped.clipped_surrogate`; book ch. 8) over the tokens,
  minus β times the per-token KL estimate π_ref/π - log(π_ref/π) - 1 to the frozen SFT
  reference in the loss (Shao et al. eqs. 3-4; β = `kl_coef`, adaptive as in ppo_lm), minus
  the entropy bonus, plus the optional PPO-ptx term (book eq. 15.12). All responses have
  the same length, so Shao et al.'s per-response token mean is the plain token mean.
Global step: generated response tokens (`rlrun.lm.pipeline`).
"""

from __future__ import annotations

import torch

from rlrun.algos.configs import GRPOConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.lm.pipeline import check_task, collect, end_iteration, make_policy, prepare
from rlrun.lm.task import LMTask
from rlrun.lm.update import TokenSteps
from rlrun.ops.clipped import clipped_surrogate
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.ops.rlhf import group_advantages, kl_k3
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import anneal_lr


def grpo_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    *,
    beta: float,
    clip_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-L^CLIP + β E[KL_k3(π || π_ref)] - c_e H over tokens, and its parts."""
    policy_loss, stats = clipped_surrogate(new_logprobs, old_logprobs, advantages, clip_coef)
    kl = kl_k3(new_logprobs, ref_logprobs).mean()
    entropy_mean = entropy.mean()
    loss = with_entropy_bonus(policy_loss + beta * kl, entropy_mean, ent_coef)
    stats.update(kl_penalty=kl.detach(), entropy=entropy_mean.detach())
    return loss, stats


def check_grpo_task(cfg: TrainConfig) -> LMTask:
    return check_task(cfg, responses_per_prompt=cfg.algo.group_size)


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: GRPOConfig = cfg.algo
    task = check_grpo_task(cfg)
    models, coefs, global_step = prepare(cfg, run, task, with_value=False)
    while global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(models.optimizers[0], cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        prompts = task.prompts(algo.prompts_per_batch).to(run.device).repeat_interleave(algo.group_size, 0)
        rollout = collect(models, task, prompts, algo.temperature)
        advantages = group_advantages(rollout.scores, algo.group_size)[:, None].expand(-1, task.response_length)
        update, beta = TokenSteps(models, rollout, task, algo), coefs["beta"]
        for mb in update.minibatches():
            loss, stats = grpo_loss(mb.logprobs, rollout.logprobs[mb.rows],
                                    rollout.ref_logprobs[mb.rows], advantages[mb.rows], mb.entropy,
                                    beta=beta, clip_coef=algo.clip_coef, ent_coef=algo.ent_coef)
            update.step(loss, stats)
        metrics = update.metrics()
        metrics["train/lr"] = lr
        global_step += rollout.tokens.shape[0] * task.response_length
        end_iteration(cfg, run, task, models, coefs, rollout, metrics, global_step)
    return run.finish(models.policy, global_step)


SPEC = AlgoSpec(name="grpo", config=GRPOConfig, train=train, make_policy=make_policy, policy_key="policy",
                check_task=check_grpo_task)
