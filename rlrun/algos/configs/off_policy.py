"""The configs of the algorithms that learn from a replay buffer: the actor-critics with
continuous actions (DDPG, TD3, SAC) and the value-based ones (DQN, SARSA) (bases listed
last-first, see `rlrun.algos.configs.mixins`)."""

from __future__ import annotations

from dataclasses import dataclass

from rlrun.algos.configs.mixins import Discounted, ReplaySettings, Rollout, check_replay
from rlrun.config import AlgoConfig, check
from rlrun.ops.schedule import linear_schedule

TD_LOSSES = ("huber", "mse")
"""The TD losses of the value-based algorithms (`algo.loss`)."""


@dataclass
class PolyakTargets(AlgoConfig):
    """Target networks that follow the online ones by Polyak averaging after every update."""

    tau: float = 0.005
    """Polyak coefficient of each target-network update (fraction of the online weights mixed in)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.tau <= 1.0, f"algo.tau={self.tau} must be in (0, 1]; e.g. algo.tau=0.005")


@dataclass
class OffPolicyConfig(ReplaySettings, PolyakTargets, Discounted):
    """Settings shared by the actor-critics with continuous actions (DDPG, TD3, SAC)."""

    actor_lr: float | None = None
    """Actor learning rate (per gradient step); null uses optimizer.lr."""
    critic_lr: float | None = None
    """Critic learning rate (per gradient step); null uses optimizer.lr."""
    log_every: int = 1_000
    """Log the averaged train/ metrics every this many env steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("actor_lr", "critic_lr"):
            value = getattr(self, key)
            check(value is None or value > 0,
                  f"algo.{key}={value} must be > 0 or null (null uses optimizer.lr)")
        check(self.log_every >= 1, f"algo.log_every={self.log_every} must be >= 1")


@dataclass
class DeterministicConfig(OffPolicyConfig):
    learning_starts: int = 25_000
    """Env steps of uniform random actions before the first update (env steps)."""
    noise: str = "gaussian"
    """Exploration noise added to the actor's actions: gaussian or ou (Ornstein-Uhlenbeck)."""
    noise_std: float = 0.1
    """Exploration noise std (gaussian) or sigma (ou), in half action ranges (actions scaled to [-1, 1])."""
    ou_theta: float = 0.15
    """Mean-reversion rate of the ou noise (per unit of ou_dt)."""
    ou_dt: float = 0.01
    """Time step of the ou process per env step."""
    policy_delay: int = 1
    """Critic updates per actor and target-network update (count; CleanRL's DDPG uses 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.policy_delay >= 1, f"algo.policy_delay={self.policy_delay} must be >= 1")
        check(self.noise in ("gaussian", "ou"), f"algo.noise={self.noise!r} must be gaussian or ou")
        check(self.noise_std >= 0, f"algo.noise_std={self.noise_std} must be >= 0; e.g. algo.noise_std=0.1")
        check(self.ou_theta >= 0, f"algo.ou_theta={self.ou_theta} must be >= 0")
        check(self.ou_dt > 0, f"algo.ou_dt={self.ou_dt} must be > 0; e.g. algo.ou_dt=0.01")
        check(self.ou_theta * self.ou_dt <= 1,
              f"algo.ou_theta * algo.ou_dt = {self.ou_theta * self.ou_dt} must be <= 1")


@dataclass
class DDPGConfig(DeterministicConfig):
    name: str = "ddpg"


@dataclass
class TD3Config(DeterministicConfig):
    name: str = "td3"
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (half action ranges)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise (half action ranges)."""
    policy_delay: int = 2
    """Critic updates per actor and target-network update (count; the paper's d = 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.policy_noise >= 0, f"algo.policy_noise={self.policy_noise} must be >= 0")
        check(self.noise_clip >= 0, f"algo.noise_clip={self.noise_clip} must be >= 0")


@dataclass
class SACConfig(OffPolicyConfig):
    name: str = "sac"
    autotune: bool = True
    """Tune the entropy temperature α toward target_entropy; false keeps α fixed at `alpha`."""
    alpha: float = 0.2
    """Fixed entropy temperature α when autotune=false (reward units per nat)."""
    alpha_init: float = 1.0
    """Initial entropy temperature α when autotune=true (reward units per nat)."""
    target_entropy: float | None = None
    """Target policy entropy of the tuning (nats); null uses -(action dimensions)."""
    alpha_lr: float | None = None
    """Learning rate of log α (per gradient step); null uses optimizer.lr."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha >= 0, f"algo.alpha={self.alpha} must be >= 0; e.g. algo.alpha=0.2")
        check(self.alpha_init > 0, f"algo.alpha_init={self.alpha_init} must be > 0; e.g. algo.alpha_init=1.0")
        check(self.alpha_lr is None or self.alpha_lr > 0,
              f"algo.alpha_lr={self.alpha_lr} must be > 0 or null (null uses optimizer.lr)")


@dataclass
class TDControlConfig(Discounted):
    """Settings shared by the value-based algorithms (DQN, SARSA)."""

    loss: str = "huber"
    """TD loss: huber (δ=1, Mnih et al. 2015) or mse (eq. 2.5)."""
    max_grad_norm: float = 10.0
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    eps_start: float = 1.0
    """Exploration probability ε at step 0 (probability)."""
    eps_end: float = 0.05
    """Exploration probability ε after the decay (probability)."""
    exploration_fraction: float = 0.1
    """Fraction of total_timesteps over which ε decays linearly from eps_start to eps_end."""
    log_every: int = 1000
    """Log training metrics every this many env steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.loss in TD_LOSSES, f"algo.loss={self.loss!r} must be {' or '.join(TD_LOSSES)}")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")
        for key in ("eps_start", "eps_end", "exploration_fraction"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, f"algo.{key}={value} must be in [0, 1]")
        check(self.log_every >= 1, f"algo.log_every={self.log_every} must be >= 1")

    def epsilon(self, step: int, total_timesteps: int) -> float:
        """ε at global env step `step`: a pure function of the step, so resuming needs no state."""
        return linear_schedule(
            self.eps_start, self.eps_end, self.exploration_fraction * total_timesteps, step
        )


@dataclass
class DQNConfig(TDControlConfig):
    """DQN's replay keys are those of `ReplaySettings`, declared here in the order its stored
    configs have (learning_starts before batch_size) and checked by the same `check_replay`."""

    name: str = "dqn"
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions; rounded down to a multiple of env.num_envs)."""
    learning_starts: int = 10_000
    """Env steps collected before the first gradient step."""
    batch_size: int = 32
    """Transitions per minibatch (count)."""
    train_every: int = 4
    """Env steps between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase (count)."""
    target_update_every: int = 1000
    """Env steps between hard target-network copies (used when tau = 1)."""
    tau: float = 1.0
    """Polyak τ after each gradient step when < 1; 1 copies every target_update_every env steps."""
    double_q: bool = False
    """Double DQN target: the online net picks argmax_a' Q(s', a'), the target net values it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_replay(self)
        check(
            self.target_update_every >= 1,
            f"algo.target_update_every={self.target_update_every} must be >= 1",
        )
        check(0.0 < self.tau <= 1.0, f"algo.tau={self.tau} must be in (0, 1]; 1 means hard copies")


@dataclass
class SarsaConfig(Rollout, TDControlConfig):
    name: str = "sarsa"
    eps_end: float = 0.1
    """Exploration probability ε after the decay (probability)."""
    exploration_fraction: float = 0.2
    """Fraction of total_timesteps over which ε decays linearly from eps_start to eps_end."""
    num_steps: int = 2
    """Env steps per environment in each on-policy batch (batch = env.num_envs * num_steps)."""
    gradient_steps: int = 4
    """Gradient steps on each on-policy batch, targets recomputed for each (count)."""
    expected: bool = False
    """Expected SARSA: bootstrap with Σ_a π(a|s') Q(s', a) under the ε-greedy π (eq. 2.12)."""
    target_update_every: int = 1000
    """Env steps between target-network copies; 0 bootstraps from the online network."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.target_update_every >= 0,
            f"algo.target_update_every={self.target_update_every} must be >= 0",
        )
        check(self.gradient_steps >= 1, f"algo.gradient_steps={self.gradient_steps} must be >= 1")
