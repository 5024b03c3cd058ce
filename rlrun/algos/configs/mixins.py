"""Config blocks that several algorithms share, each with its fields and their checks.

A block is a dataclass subclass of `AlgoConfig`; an algorithm's config lists the blocks it is
built from. A dataclass puts the fields of its LAST base first, so bases are listed last-first:
`A2CConfig(ActorCriticLoss, GAE, Discounted, Rollout)` has the keys name, num_steps, gamma,
gae_lambda, then the loss settings, then its own fields. Key order is part of every stored
config (`.hydra/config.yaml`, checkpoints), so it does not change. An algorithm redeclares a
block's field only to give it another default (and then its own docstring); the check stays in
the block. Each `__post_init__` calls `super().__post_init__()` first, so fields are checked in
key order.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlrun.config import AlgoConfig, check, check_discount


@dataclass
class Discounted(AlgoConfig):
    """The discount of future rewards."""

    gamma: float = 0.99
    """Discount factor per env step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_discount("algo.gamma", self.gamma)


@dataclass
class Rollout(AlgoConfig):
    """The rollout length of an on-policy algorithm."""

    num_steps: int = 128
    """Rollout length per environment between updates (env steps)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")


@dataclass
class GAE(AlgoConfig):
    """Generalised advantage estimation's lambda."""

    gae_lambda: float = 0.95
    """GAE lambda (1 gives Monte Carlo returns minus the baseline)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")


@dataclass
class ActorCriticLoss(AlgoConfig):
    """The weights of an actor-critic loss (policy term + value term - entropy bonus), its
    gradient clip and the advantage normalisation."""

    ent_coef: float = 0.01
    """Entropy bonus coefficient (loss units per nat)."""
    vf_coef: float = 0.5
    """Value loss coefficient (loss units per squared return unit)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    norm_adv: bool = True
    """Normalise advantages per minibatch to zero mean, unit std."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class ReplaySettings(AlgoConfig):
    """The replay buffer and the schedule of updates from it."""

    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions; rounded down to a multiple of env.num_envs)."""
    batch_size: int = 256
    """Minibatch size of each gradient step (transitions)."""
    learning_starts: int = 5_000
    """Env steps collected before the first update (env steps)."""
    train_every: int = 1
    """Env steps between update phases (env steps, summed over envs)."""
    gradient_steps: int = 1
    """Gradient steps per update phase (count)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_replay(self)


def check_replay(algo: ReplaySettings) -> None:
    """The checks of `ReplaySettings`' fields, for a config that declares them in another order
    (DQN's stored key order predates the block)."""
    check(algo.buffer_size >= 1, f"algo.buffer_size={algo.buffer_size} must be >= 1")
    check(algo.batch_size >= 1, f"algo.batch_size={algo.batch_size} must be >= 1")
    check(algo.learning_starts >= 0, f"algo.learning_starts={algo.learning_starts} must be >= 0")
    check(algo.train_every >= 1, f"algo.train_every={algo.train_every} must be >= 1")
    check(algo.gradient_steps >= 1, f"algo.gradient_steps={algo.gradient_steps} must be >= 1")
