"""The replay loop shared by DQN, DDPG, TD3 and SAC.

The outer loop of book Alg. 2.2-2.3 (DQN) and 9.4, 10.1 and 11.1 (DDPG, TD3, SAC; the lecture's
boxes), written once: act with the learner's behaviour policy, store each transition
<s, a, r, s', terminated> in the replay buffer with the real final observation where an
episode ended, and every `train_every` env steps draw `gradient_steps` minibatches with a
seeded generator.

The rule for loops: a family shares one loop where its subtle parts live (here the final
observations, the sampler and resume), and each algorithm's module drives it visibly with its
own loss. `ReplayLoop.batches` yields the sampled minibatches; the algorithm's `train` takes one
gradient step on each with its own update and hands the statistics back (`ReplayLoop.record`).
The learner (a `ReplayActor`) brings the networks, the behaviour policy and the env-step
schedules (DQN's target copies, ε).

Continuous actions are handled in [-1, 1] everywhere (replay, critics, noise) and scaled to the
env's bounds only when stepping the env (`ContinuousLearner`). Resuming restores the replay
buffer (written beside the checkpoint, `checkpoints/replay.pt`), the sampling generator and the
update counter, and every schedule is a function of the global env step, so training continues
where it stopped. SARSA is on-policy and keeps no replay buffer: it has its own loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlrun.config import (
    ConfigError,
    OptimizerConfig,
    TrainConfig,
)
from rlrun.data.replay import ArrayLike, ReplayBatch, make_replay
from rlrun.envs.factory import VecEnv
from rlrun.networks.continuous import ActionScaler
from rlrun.ops.schedule import crossed
from rlrun.run.facade import Run, Scalars, SideFile, Stateful, TrainResult
from rlrun.training.optim import FlatOptimizer, anneal_lr, make_optimizer
from rlrun.training.stats import MeanStats


class ReplayConfig(Protocol):
    """The `algo` keys the replay loop reads (OffPolicyConfig, DQNConfig)."""

    gamma: float
    buffer_size: int
    batch_size: int
    learning_starts: int
    train_every: int
    gradient_steps: int
    log_every: int


def optimizer_with_lr(
    params: Iterable[nn.Parameter], cfg: OptimizerConfig, lr: float | None
) -> FlatOptimizer:
    """The configured optimizer with learning rate `lr` (optimizer.lr when None)."""
    return make_optimizer(params, cfg if lr is None else replace(cfg, lr=lr))


def gradient_step(
    optimizer: FlatOptimizer, loss: torch.Tensor, inputs: list[nn.Parameter] | None = None
) -> torch.Tensor:
    """One optimizer step on `loss` (gradients only into `inputs` when given, e.g. an actor's
    weights and not the critic's it is valued by); returns the detached loss."""
    optimizer.zero_grad()
    loss.backward(inputs=inputs)
    optimizer.step()
    return loss.detach()


def require_continuous_actions(algo: str) -> Callable[..., None]:
    """The `check_spaces` of an algorithm that needs vector observations and bounded Box actions."""

    def check_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str = "this env") -> None:
        if not isinstance(action_space, gym.spaces.Box):
            instead = "algo=dqn or ppo" if isinstance(action_space, gym.spaces.Discrete) else "algo=ppo"
            raise ConfigError(
                f"algo={algo} needs continuous (Box) actions; {env_id} has {type(action_space).__name__} "
                f"actions: use {instead}"
            )
        if len(action_space.shape) != 1:
            raise ConfigError(f"algo={algo} needs 1-D Box actions; {env_id} has shape {action_space.shape}")
        if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
            raise ConfigError(
                f"algo={algo} scales tanh outputs to the action bounds, but {env_id} has unbounded actions: "
                "use algo=ppo"
            )
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ConfigError(
                f"algo={algo} needs vector (1-D Box) observations; {env_id} has {obs_space}: use algo=ppo"
            )

    return check_spaces


class ReplayActor(Protocol):
    """The acting side of an algorithm, which the shared replay loop calls between env steps."""

    policy: nn.Module
    """The acting network, evaluated and returned by the run (checkpointed under its own name)."""
    optimizers: list[FlatOptimizer]
    """Every optimizer, for the learning-rate schedule."""

    def tracked(self) -> dict[str, Stateful]:
        """Objects with state to checkpoint, by name (networks, optimizers, noise, temperature)."""
        ...

    def act(self, obs: np.ndarray, global_step: int) -> tuple[ArrayLike, np.ndarray]:
        """Behaviour actions for a batch of observations (called without grad): as stored in the
        replay buffer, and as sent to the envs."""
        ...

    def end_episodes(self, ended: np.ndarray) -> None:
        """Told which envs (boolean mask) finished an episode this step."""
        ...

    def after_env_step(self, previous: int, global_step: int) -> None:
        """Told that the global env step moved from `previous` to `global_step` (env-step schedules)."""
        ...

    def log_values(self) -> dict[str, float]:
        """Metrics of the learner's own schedules for the next log line (ε, learning rate)."""
        ...


class ReplayLearner(ReplayActor, Protocol):
    """A `ReplayActor` with its update, for `train_off_policy`."""

    def update(self, batch: ReplayBatch, update: int) -> dict[str, torch.Tensor]:
        """One gradient step on `batch` (`update` counts earlier steps); returns detached statistics."""
        ...


class ContinuousLearner:
    """The acting part of DDPG, TD3 and SAC: uniform random actions in [-1, 1] for the first
    `learning_starts` env steps, then the subclass's `explore`; actions are stored in [-1, 1]
    and scaled to the env's bounds only to step the envs."""

    actor: nn.Module

    def __init__(self, action_space: gym.spaces.Box, num_envs: int, learning_starts: int,
                 device: torch.device) -> None:
        self.scaler = ActionScaler(action_space).to(device)
        self.random_shape = (num_envs, action_space.shape[0])
        self.learning_starts, self.device = learning_starts, device

    @property
    def policy(self) -> nn.Module:
        return self.actor

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Behaviour-policy actions in [-1, 1] for a batch of observations (called without grad)."""
        raise NotImplementedError

    def act(self, obs: np.ndarray, global_step: int) -> tuple[torch.Tensor, np.ndarray]:
        if global_step < self.learning_starts:
            actions = torch.rand(self.random_shape, device=self.device) * 2.0 - 1.0
        else:
            actions = self.explore(torch.as_tensor(obs, device=self.device))
        return actions, self.scaler.to_env(actions).cpu().numpy()

    def end_episodes(self, ended: np.ndarray) -> None:
        """Nothing to reset by default."""

    def after_env_step(self, previous: int, global_step: int) -> None:
        """No env-step schedule: targets move with every update."""

    def log_values(self) -> dict[str, float]:
        return {}


class SampleGenerator:
    """The torch.Generator that draws replay minibatches, seeded from `seed`, with checkpointable state."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["state"])


class ReplayLoop:
    """The training envs, the replay buffer and the sampler of one run, and the loop over them
    (`batches`); the algorithm's `train` builds its learner on `envs` in between."""

    def __init__(self, cfg: TrainConfig, run: Run) -> None:
        self.cfg, self.run = cfg, run
        algo: ReplayConfig = cfg.algo
        self.envs: VecEnv = run.make_envs(gamma=algo.gamma)
        self.replay = make_replay(algo.buffer_size, self.envs, run.device)
        run.note_learning_starts(algo.learning_starts)
        self.sampler = SampleGenerator(cfg.seed)
        self.progress = Scalars(updates=0)
        self.stats = MeanStats()
        self.global_step = 0

    @property
    def updates(self) -> int:
        """Gradient steps taken before the current one (resumed with the run)."""
        return int(self.progress["updates"])

    def record(self, stats: dict[str, torch.Tensor]) -> None:
        """The statistics of one update, averaged into the next `train/` log line."""
        self.stats.add(stats)

    def batches(self, learner: ReplayActor) -> Iterator[ReplayBatch]:
        """Run the loop with `learner` acting (restoring a resumed run first), yielding each
        minibatch to update on; logs, evaluates and checkpoints on schedule."""
        cfg, run, envs, replay, progress = self.cfg, self.run, self.envs, self.replay, self.progress
        algo: ReplayConfig = cfg.algo
        run.track(**learner.tracked(), envs=envs, replay=SideFile(replay), sampler=self.sampler,
                  progress=progress)
        global_step = self.global_step = run.restore()
        obs = envs.reset(seed=run.env_seed)
        while global_step < cfg.total_timesteps and not run.should_stop:
            with torch.no_grad():
                actions, env_actions = learner.act(obs, global_step)
            step = envs.step(env_actions)
            run.record_episodes(step)
            replay.add(obs, step.final_obs, actions, step.rewards, step.terminations, step.truncations)
            ended = step.terminations | step.truncations
            if ended.any():
                learner.end_episodes(ended)
            obs = step.obs
            previous, global_step = global_step, global_step + envs.num_envs
            self.global_step = global_step
            learner.after_env_step(previous, global_step)

            if global_step > algo.learning_starts and crossed(previous, global_step, algo.train_every):
                for optimizer in learner.optimizers:
                    anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
                for _ in range(algo.gradient_steps):
                    yield replay.sample(algo.batch_size, self.sampler.generator)
                    progress["updates"] += 1
            if crossed(previous, global_step, algo.log_every) or global_step >= cfg.total_timesteps:
                run.log({**self.stats.pop(), **learner.log_values(), "train/updates": float(self.updates),
                         "train/buffer_size": float(len(replay))}, global_step)
            run.maybe_evaluate(learner.policy, global_step)
            run.maybe_checkpoint(global_step)

    def finish(self, policy: nn.Module) -> TrainResult:
        """The run's final evaluation of `policy` and last checkpoint."""
        return self.run.finish(policy, self.global_step)


def train_off_policy(cfg: TrainConfig, run: Run, make_learner: Callable[[VecEnv], ReplayLearner]) -> TrainResult:
    """The replay loop around a learner that carries its update (built by `make_learner(envs)`),
    for an algorithm whose module holds nothing more than its `ReplayLearner`."""
    loop = ReplayLoop(cfg, run)
    learner = make_learner(loop.envs)
    for batch in loop.batches(learner):
        loop.record(learner.update(batch, loop.updates))
    return loop.finish(learner.policy)
