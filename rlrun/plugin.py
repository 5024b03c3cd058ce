"""The interface for algorithms written in other packages: import from here, nowhere else.

A package registers an algorithm with an entry point in the group `rlrun.algorithms`
(CONTRIBUTING.md, "Writing an algorithm in your own package"). Everything such an algorithm
needs from rlrun is re-exported below; these names stay importable from `rlrun.plugin` when
rlrun's own modules move.
"""

from __future__ import annotations

from rlrun.algos._offpolicy import ContinuousLearner, ReplayLearner, ReplayLoop, train_off_policy
from rlrun.algos.a2c import actor_critic_step
from rlrun.algos.spec import AlgoSpec
from rlrun.config import AlgoConfig, ConfigError, TrainConfig, check, check_discount
from rlrun.data.batch import Batch
from rlrun.data.episodes import EpisodeBatch, collect_episodes, episode_quotas
from rlrun.data.replay import ReplayBuffer, make_replay
from rlrun.data.rollout import RolloutBuffer, collect_rollout
from rlrun.networks.actor_critic import ActorCritic
from rlrun.networks.continuous import DeterministicActor, QCritic, TanhGaussianActor
from rlrun.networks.mlp import mlp
from rlrun.networks.q import QNetwork
from rlrun.ops.entropy import with_entropy_bonus
from rlrun.ops.returns import discounted_returns, explained_variance, gae, standardize
from rlrun.ops.schedule import linear_schedule
from rlrun.ops.td import epsilon_greedy, q_learning_target, td_loss
from rlrun.run.facade import Run, TrainResult
from rlrun.training.minibatches import MinibatchSteps, minibatch_steps, shuffled_minibatches
from rlrun.training.optim import FlatOptimizer, anneal_lr, make_optimizer
from rlrun.training.stats import MeanStats
from rlrun.training.steps import gradient_step, value_regression_steps
from rlrun.training.targets import TargetSync, hard_update

__all__ = [  # noqa: RUF022 - grouped by role, each with its one-line description
    # The spec and the config.
    "AlgoSpec",  # what a package registers: name, config, train, make_policy, policy_key
    "AlgoConfig",  # base of an algorithm's config dataclass (its `name` default is the algo name)
    "TrainConfig",  # the typed config a train function receives (cfg.algo: its own dataclass)
    "ConfigError",  # raise it for a user mistake: rlrun prints its one-line message and exits 2
    "check",  # check(condition, message): raise ConfigError(message) unless condition holds
    "check_discount",  # check_discount("algo.gamma", value): refuse a discount outside (0, 1]
    # The run services a train function calls.
    "Run",  # make_envs, track, restore, log, maybe_evaluate, maybe_checkpoint, finish, ...
    "TrainResult",  # what train returns: run.finish(policy, global_step)
    # Loop pieces: storage and collection.
    "RolloutBuffer",  # time-major on-policy storage [T, N, ...] preallocated on the device
    "collect_rollout",  # fill a RolloutBuffer with the agent's sampling policy; the next obs
    "Batch",  # a flattened rollout with GAE advantages and returns (Batch.from_rollout)
    "EpisodeBatch",  # whole episodes of every env, time-major, with a validity mask
    "collect_episodes",  # collect whole episodes per env (REINFORCE-style batches)
    "episode_quotas",  # split an episode count over the training envs
    "ReplayBuffer",  # replay storage with real final observations, saved with the checkpoint
    "make_replay",  # a ReplayBuffer for the run's envs
    "ReplayLearner",  # protocol of a replay algorithm's learner (act, update, tracked, ...)
    "ContinuousLearner",  # base of a learner with continuous actions in [-1, 1]
    "train_off_policy",  # the shared replay loop, driven by a ReplayLearner
    "ReplayLoop",  # the same loop as an iterator of minibatches (ReplayLoop.batches), for your own update
    "MinibatchSteps",  # epochs of shuffled minibatches: orders, slices, step(loss, stats), KL stop
    "shuffled_minibatches",  # the minibatches of a Batch for a MinibatchSteps (PPO-style loop)
    "minibatch_steps",  # MinibatchSteps on losses given as per-epoch functions (older form)
    # Networks.
    "ActorCritic",  # policy and value networks from cfg.network (act, dist, value, ...)
    "QNetwork",  # Q(s, ·) for discrete actions from cfg.network
    "DeterministicActor",  # a deterministic continuous policy (DDPG, TD3)
    "TanhGaussianActor",  # a squashed Gaussian policy (SAC)
    "QCritic",  # Q(s, a) for continuous actions
    "mlp",  # mlp(in_dim, hidden_sizes, activation): a plain MLP torso
    # Ops: optimisation.
    "FlatOptimizer",  # the optimizer every tracked network uses (non-finite steps refused)
    "make_optimizer",  # make_optimizer(params, cfg.optimizer): a FlatOptimizer
    "anneal_lr",  # set the learning rate of cfg.optimizer.schedule at a step; returns it
    "gradient_step",  # zero the gradient, backward, clip to a norm, step; returns the norm
    "actor_critic_step",  # one gradient step of -log π · A + value loss - entropy bonus
    "value_regression_steps",  # full-batch critic steps on mean((V - target)^2)
    "with_entropy_bonus",  # loss - ent_coef * mean entropy
    # Ops: returns, statistics, targets.
    "gae",  # generalised advantage estimates and returns over a time-major rollout
    "discounted_returns",  # rewards-to-go, reset at episode ends
    "standardize",  # zero mean, unit std
    "explained_variance",  # 1 - Var(target - prediction) / Var(target)
    "MeanStats",  # averages of per-update statistics for run.log
    "TargetSync",  # Polyak or periodic target network updates
    "hard_update",  # copy a network's parameters into its target
    "td_loss",  # Huber or squared TD error
    "q_learning_target",  # r + γ (1 - done) max_a Q'(s', a)
    "epsilon_greedy",  # ε-greedy actions from Q-values
    "linear_schedule",  # a value moving linearly from start to end over a duration
]
