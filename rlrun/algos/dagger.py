"""DAgger, dataset aggregation (Ross et al. 2011; book ch. 13.2).

Round 0 is behavioral cloning on the expert's episodes, or on `algo.dataset` (`rlrun.algos.bc`;
the policy, loss, held-out split and epoch loop of `rlrun.algos._imitation`); the expert
`algo.expert` is needed either way, to label the rollouts. Each of the `algo.rounds` rounds
i = 1..rounds then
1. rolls out the mixture π_i = β_i π* + (1 - β_i) π̂_i for `algo.episodes_per_round` episodes:
   at every step each env executes the expert's action with probability β_i, else the
   learner's deterministic action (per-step mixing);
2. labels every visited state with the expert's action (the expert "creates new optimal
   examples starting from these states", ch. 13.2);
3. aggregates them into the dataset D ← D ∪ D_i and retrains π̂ for `algo.epochs` epochs on D
   (continuing from the current weights, input statistics refitted on D).
β_i follows `algo.beta_schedule`: exponential β_i = beta0^i (Ross et al.'s β_i = p^{i-1}, with
their expert-only first iteration being round 0), linear β_i = beta0 (1 - (i-1)/rounds), or
zero β_i = 0.

global_step counts supervised samples as in bc. train/dataset_size is the number of expert
labels so far (initial transitions plus labelled rollout states); train/rollout_return is the
true return of the round's mixture rollouts. After each round's training the learner is
evaluated with the eval protocol (train/round_eval_return, logged with the next round's data;
the last round's is the final eval/return_mean).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlrun.algos._imitation import (
    check_spaces,
    initial_demos,
    make_policy,
    setup,
    train_epochs,
)
from rlrun.algos.configs import DAggerConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.demos import Demos, Expert, collect_demos
from rlrun.envs.factory import VecEnv
from rlrun.networks.actor import Actor
from rlrun.run.facade import Run, TrainResult


def mixing_beta(schedule: str, beta0: float, round_index: int, rounds: int) -> float:
    """β_i of round `round_index` (1-based) out of `rounds`."""
    if schedule == "exponential":
        return beta0**round_index
    if schedule == "linear":
        return beta0 * (1.0 - (round_index - 1) / rounds)
    return 0.0


def mixed_policy(actor: Actor, expert: Expert, beta: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """obs -> actions: per env and step the expert's action with probability β, else the learner's."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        learner = actor.act(obs, deterministic=True)
        if beta <= 0.0:
            return learner
        use_expert = torch.rand(len(obs), device=obs.device) < beta
        mask = use_expert.reshape(-1, *([1] * (learner.dim() - 1)))
        return torch.where(mask, expert.act(obs).to(learner.dtype), learner)

    return act


def run_round(actor: Actor, expert: Expert, envs: VecEnv, cfg: TrainConfig, run: Run, round_index: int,
              beta: float) -> Demos:
    """Roll out the β-mixture and return the expert-labelled episodes."""
    actor.eval()
    demos = collect_demos(mixed_policy(actor, expert, beta), expert.act, envs, cfg.algo.episodes_per_round,
                          run.record_episodes, run.device, seed=cfg.seed + 7919 * round_index)  # a function of the round: exact on resume
    actor.train()
    return demos


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: DAggerConfig = cfg.algo
    envs, expert, actor, optimizer, demos, progress = setup(cfg, run, expert_required=True)
    global_step = run.restore()
    if len(demos) == 0:
        demos.extend(initial_demos(cfg, run, envs, expert))
        actor.fit_normalization(demos.obs)
    while True:
        global_step = train_epochs(actor, optimizer, demos, cfg, run, progress, global_step,
                          {"train/round": float(progress["round"])})
        if progress["epochs"] < algo.epochs or progress["round"] >= algo.rounds or run.should_stop:
            break  # budget spent, signal, stopping rule, or the last round trained (run.finish evaluates it)
        round_eval = run.evaluate(actor)
        round_index = int(progress["round"]) + 1
        beta = mixing_beta(algo.beta_schedule, algo.beta0, round_index, algo.rounds)
        labelled = run_round(actor, expert, envs, cfg, run, round_index, beta)
        demos.extend(labelled)
        actor.fit_normalization(demos.obs)
        progress.update(round=round_index, epochs=0)
        run.log({
            "train/round_eval_return": round_eval.mean,
            "train/round": float(round_index),
            "train/beta": beta,
            "train/dataset_size": float(len(demos)),
            "train/round_labels": float(len(labelled)),
            "train/rollout_return": float(np.mean(labelled.episode_returns())),
        }, global_step)
    return run.finish(actor, global_step)


SPEC = AlgoSpec(name="dagger", config=DAggerConfig, train=train, make_policy=make_policy, policy_key="actor",
                check_spaces=check_spaces)
