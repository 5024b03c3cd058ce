"""The rollout-update cycle of the on-policy algorithms (PPO, PPO-KL, RLHF, A2C, Off-PAC).

The rule for loops: a family shares one loop, written once where its subtle parts live (here
the order of schedule, rollout, step count, log, evaluation and checkpoint; for the PPO
family's epochs `rlrun.training.minibatches`; for replay `_offpolicy`: final observations,
sampling, resume). The algorithm's module visibly drives it, iterating it and computing in the
body its own loss: a plain function in its module, built from pure `rlrun.ops` primitives.
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym

from rlrun.config import TrainConfig
from rlrun.data.rollout import RolloutBuffer, collect_rollout
from rlrun.envs.factory import VecEnv
from rlrun.networks.actor_critic import ActorCritic
from rlrun.run.facade import Run, TrainResult
from rlrun.training.optim import FlatOptimizer, anneal_lr


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    return ActorCritic(cfg.network, obs_space, action_space)


class RolloutLoop:
    """`for buffer, metrics in loop:` one iteration per rollout until the run's budget or a stop.

    Each iteration sets the learning rate of `cfg.optimizer.schedule`, fills `buffer` with
    `algo.num_steps` steps of every env sampled by `actor` (by default `agent`; values always
    from `agent`), counts them, and yields the buffer with an empty dict. The body updates the
    agent and puts its `train/` metrics in that dict; they are then logged with `train/lr`,
    and `agent` is evaluated and checkpointed as the run's settings say. Build the loop after
    `run.track(...)`: it restores a resumed run. `finish()` ends the run with `agent`.
    """

    def __init__(self, cfg: TrainConfig, run: Run, envs: VecEnv, agent: ActorCritic,
                 optimizer: FlatOptimizer, actor: ActorCritic | None = None) -> None:
        self.cfg, self.run, self.envs = cfg, run, envs
        self.agent, self.optimizer = agent, optimizer
        self.actor = agent if actor is None else actor
        self.global_step = run.restore()
        self.buffer = RolloutBuffer(cfg.algo.num_steps, envs.num_envs,
                                    envs.single_observation_space, envs.single_action_space,
                                    run.device)
        self.obs = envs.reset(seed=run.env_seed)

    def __iter__(self) -> Iterator[tuple[RolloutBuffer, dict[str, float]]]:
        cfg, run = self.cfg, self.run
        while self.global_step < cfg.total_timesteps and not run.should_stop:
            lr = anneal_lr(self.optimizer, cfg.optimizer.schedule, self.global_step,
                           cfg.total_timesteps)
            self.obs = collect_rollout(self.actor, self.envs, self.buffer, self.obs,
                                       run.record_episodes, cfg.numpy_acting, critic=self.agent)
            self.global_step += self.buffer.batch_size
            metrics: dict[str, float] = {}
            yield self.buffer, metrics
            run.log({**metrics, "train/lr": lr}, self.global_step)
            run.maybe_evaluate(self.agent, self.global_step)
            run.maybe_checkpoint(self.global_step)

    def finish(self) -> TrainResult:
        """The run's final evaluation and checkpoint of `agent`: what `train` returns."""
        return self.run.finish(self.agent, self.global_step)
