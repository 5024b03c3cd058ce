"""The config dataclasses of rlrun's algorithms: one per `algo=` choice (its `name` default is
the choice), and the bases a family shares. They import no torch and no training code, so that
composing a config (`rlrun --help`, `--cfg job`) loads none; each algorithm's
module (`rlrun/algos/<name>.py`) holds its loss, its loop and its `SPEC`, whose `config` is its
class here (the registry reads the `algo=` choices from this module)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlrun.config import AlgoConfig, check, check_discount
from rlrun.ops.schedule import linear_schedule

TD_LOSSES = ("huber", "mse")
"""The TD losses of the value-based algorithms (`algo.loss`)."""
FVP_KINDS = ("kl_hessian", "fisher")
"""The Fisher-vector products of the natural gradient (`algo.fvp`)."""


@dataclass
class PPOFamilyConfig(AlgoConfig):
    """Settings of the clipped minibatch loop shared by PPO, PPO-KL and RLHF."""

    num_steps: int = 128
    """Rollout length per environment between updates (env steps)."""
    num_epochs: int = 4
    """Passes over each rollout batch (count)."""
    num_minibatches: int = 4
    """Minibatches per epoch (count); minibatch size = num_envs * num_steps / num_minibatches."""
    gamma: float = 0.99
    """Discount factor per env step."""
    gae_lambda: float = 0.95
    """GAE lambda (1 gives Monte Carlo returns minus the baseline)."""
    clip_coef: float = 0.2
    """Policy ratio clip range epsilon (ratio units)."""
    clip_vloss: bool = True
    """Clip value-function updates to clip_coef around the old values."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (loss units per nat)."""
    vf_coef: float = 0.5
    """Value loss coefficient (loss units)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    norm_adv: bool = True
    """Normalise advantages per minibatch to zero mean, unit std."""
    target_kl: float | None = None
    """End the update, without stepping it, at the first minibatch whose approx KL to the old
    policy exceeds this (nats); null disables early stop."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check(self.num_epochs >= 1, f"algo.num_epochs={self.num_epochs} must be >= 1")
        check(self.num_minibatches >= 1, f"algo.num_minibatches={self.num_minibatches} must be >= 1")
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.clip_coef > 0, f"algo.clip_coef={self.clip_coef} must be > 0; e.g. algo.clip_coef=0.2")
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")
        check(self.target_kl is None or self.target_kl > 0, f"algo.target_kl={self.target_kl} must be > 0 or null")


@dataclass
class NaturalPGConfig(AlgoConfig):
    num_steps: int = 1024
    """Rollout length per environment between policy updates (env steps)."""
    gamma: float = 0.99
    """Discount factor per env step."""
    gae_lambda: float = 0.95
    """GAE lambda (1 gives Monte Carlo returns minus the baseline)."""
    max_kl: float = 0.01
    """KL radius δ: the mean KL(π_old || π_new) one policy update aims at (nats)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for the natural direction F⁻¹g (count)."""
    damping: float = 0.1
    """Damping λ added to the Fisher matrix, F + λI (Fisher units, i.e. nats per squared parameter)."""
    norm_adv: bool = True
    """Normalise advantages over the batch to zero mean, unit std."""
    vf_lr: float = 1e-3
    """Value-function learning rate (per gradient step); replaces optimizer.lr, which is unused."""
    vf_epochs: int = 10
    """Passes over each batch when fitting the value function (count)."""
    vf_minibatches: int = 16
    """Minibatches per value epoch (count); minibatch size = num_envs * num_steps / vf_minibatches."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.max_kl > 0, f"algo.max_kl={self.max_kl} must be > 0; e.g. algo.max_kl=0.01")
        check(self.cg_iters >= 1, f"algo.cg_iters={self.cg_iters} must be >= 1; e.g. algo.cg_iters=10")
        check(self.damping >= 0, f"algo.damping={self.damping} must be >= 0; e.g. algo.damping=0.1")
        check(self.vf_lr > 0, f"algo.vf_lr={self.vf_lr} must be > 0; e.g. algo.vf_lr=1e-3")
        check(self.vf_epochs >= 1, f"algo.vf_epochs={self.vf_epochs} must be >= 1")
        check(self.vf_minibatches >= 1, f"algo.vf_minibatches={self.vf_minibatches} must be >= 1")


@dataclass
class OffPolicyConfig(AlgoConfig):
    gamma: float = 0.99
    """Discount factor per env step."""
    tau: float = 0.005
    """Polyak coefficient of each target-network update (fraction of the online weights mixed in)."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    batch_size: int = 256
    """Minibatch size of each gradient step (transitions)."""
    learning_starts: int = 5_000
    """Env steps of uniform random actions before the first update (env steps)."""
    train_every: int = 1
    """Env steps between update phases (env steps, summed over envs)."""
    gradient_steps: int = 1
    """Gradient steps per update phase (count)."""
    actor_lr: float | None = None
    """Actor learning rate (per gradient step); null uses optimizer.lr."""
    critic_lr: float | None = None
    """Critic learning rate (per gradient step); null uses optimizer.lr."""
    log_every: int = 1_000
    """Log the averaged train/ metrics every this many env steps."""

    def __post_init__(self) -> None:
        check_discount("algo.gamma", self.gamma)
        check(0.0 < self.tau <= 1.0, f"algo.tau={self.tau} must be in (0, 1]; e.g. algo.tau=0.005")
        check(self.buffer_size >= 1, f"algo.buffer_size={self.buffer_size} must be >= 1")
        check(self.batch_size >= 1, f"algo.batch_size={self.batch_size} must be >= 1")
        check(self.learning_starts >= 0, f"algo.learning_starts={self.learning_starts} must be >= 0")
        check(self.train_every >= 1, f"algo.train_every={self.train_every} must be >= 1")
        check(self.gradient_steps >= 1, f"algo.gradient_steps={self.gradient_steps} must be >= 1")
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
class TDControlConfig(AlgoConfig):
    """Settings shared by the value-based algorithms (DQN, SARSA)."""

    gamma: float = 0.99
    """Discount factor per env step."""
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
        check_discount("algo.gamma", self.gamma)
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
class ImitationConfig(AlgoConfig):
    """Settings shared by behavioral cloning and DAgger."""

    expert: str | None = None
    """Expert: an rlrun checkpoint file or run dir (needed unless `dataset` is set)."""
    expert_episodes: int = 10
    """Expert episodes recorded into the dataset (count)."""
    dataset: str | None = None
    """Train from this dataset, not new expert episodes: .npz file, Minari dir or local Minari id."""
    loss: str = "nll"
    """Continuous actions: nll (Gaussian negative log-likelihood) or mse (squared error of the mean)."""
    epochs: int = 50
    """Passes over the training split (count)."""
    batch_size: int = 64
    """Transitions per minibatch (count)."""
    val_fraction: float = 0.1
    """Share of the transitions held out for validation (fraction of the dataset)."""
    max_grad_norm: float = 1.0
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    normalize_obs: bool = True
    """Standardise observations with the dataset's mean and std inside the policy."""

    def __post_init__(self) -> None:
        check(self.expert_episodes >= 1, f"algo.expert_episodes={self.expert_episodes} must be >= 1")
        check(self.loss in ("nll", "mse"), f"algo.loss={self.loss!r} must be nll or mse")
        check(self.epochs >= 1, f"algo.epochs={self.epochs} must be >= 1")
        check(self.batch_size >= 1, f"algo.batch_size={self.batch_size} must be >= 1")
        check(0.0 <= self.val_fraction < 1.0, f"algo.val_fraction={self.val_fraction} must be in [0, 1)")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class LMConfig(AlgoConfig):
    """Fields shared by ppo_lm and grpo: stages 1-3, sampling, the clipped update, the KL penalty."""

    pretrain_steps: int = 500
    """Gradient steps of next-token pretraining on the synthetic corpus (stage 1; 0 skips it)."""
    sft_steps: int = 300
    """Gradient steps of supervised fine-tuning on demonstrations (stage 2; 0 skips it)."""
    supervised_batch_size: int = 64
    """Sequences per gradient step of pretraining, SFT and the PPO-ptx term (count)."""
    supervised_lr: float = 3e-3
    """Learning rate of pretraining and SFT (per gradient step)."""
    rm_pairs: int = 2048
    """Preference pairs made to train the reward model, before dropping ties (count)."""
    rm_steps: int = 400
    """Gradient steps of Bradley-Terry reward-model training (stage 3)."""
    rm_batch_size: int = 64
    """Preference pairs per reward-model gradient step (count)."""
    rm_lr: float = 1e-3
    """Learning rate of reward-model training (per gradient step)."""
    prompts_per_batch: int = 64
    """Prompts sampled per RL iteration (count)."""
    num_epochs: int = 4
    """Passes over each RL batch (count)."""
    num_minibatches: int = 4
    """Minibatches per epoch (count); each holds responses / num_minibatches whole responses."""
    clip_coef: float = 0.2
    """Policy ratio clip range epsilon (ratio units)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (loss units per nat)."""
    max_grad_norm: float = 1.0
    """Global gradient norm clip per network (L2 norm); 0 disables clipping."""
    target_kl: float | None = None
    """Stop the epoch loop when the approx KL to the sampling policy exceeds this (nats per token); null: never."""
    temperature: float = 1.0
    """Sampling temperature: tokens are drawn from softmax(logits / temperature) (book 15.2.9)."""
    kl_coef: float = 0.1
    """β of the KL penalty to the reference (reward units per nat); the start value when adaptive."""
    adaptive_kl: bool = False
    """Adapt β after each iteration towards `kl_target` (Ziegler et al. 2019's controller)."""
    kl_target: float = 2.0
    """Target KL to the reference per response for adaptive β (nats per response)."""
    ptx_coef: float = 0.0
    """PPO-ptx: weight of the pretraining NLL in the RL loss (eq. 15.12; 0 disables)."""
    sample_every: int = 10
    """RL iterations between sample generations on the console and in samples.txt (count; 0: never)."""

    def __post_init__(self) -> None:
        for name in ("pretrain_steps", "sft_steps", "rm_steps"):
            check(getattr(self, name) >= 0, f"algo.{name}={getattr(self, name)} must be >= 0")
        for name in ("supervised_batch_size", "rm_pairs", "rm_batch_size", "prompts_per_batch", "num_epochs",
                     "num_minibatches"):
            check(getattr(self, name) >= 1, f"algo.{name}={getattr(self, name)} must be >= 1")
        for name in ("supervised_lr", "rm_lr", "clip_coef", "temperature", "kl_target"):
            check(getattr(self, name) > 0, f"algo.{name}={getattr(self, name)} must be > 0")
        for name in ("ent_coef", "max_grad_norm", "kl_coef", "ptx_coef", "sample_every"):
            check(getattr(self, name) >= 0, f"algo.{name}={getattr(self, name)} must be >= 0")
        check(self.target_kl is None or self.target_kl > 0, f"algo.target_kl={self.target_kl} must be > 0 or null")
        check(not self.adaptive_kl or self.kl_coef > 0,
              "algo.adaptive_kl=true scales algo.kl_coef, which is 0; set algo.kl_coef > 0")


@dataclass
class A2CConfig(AlgoConfig):
    name: str = "a2c"
    num_steps: int = 5
    """Rollout length per environment between updates (env steps)."""
    gamma: float = 0.99
    """Discount factor per env step."""
    gae_lambda: float = 1.0
    """GAE lambda (1 gives n-step returns minus the baseline)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (loss units per nat)."""
    vf_coef: float = 0.5
    """Value loss coefficient (loss units per squared return unit; the value loss is the MSE)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    norm_adv: bool = False
    """Normalise advantages per rollout to zero mean, unit std."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class BCConfig(ImitationConfig):
    name: str = "bc"


@dataclass
class CEMConfig(AlgoConfig):
    name: str = "cem"
    population: int = 32
    """Candidate parameter vectors per iteration, one training env each (count)."""
    elite_frac: float = 0.2
    """Fraction of the population refitted as the elite (fraction of candidates)."""
    episodes_per_candidate: int = 1
    """Episodes averaged into each candidate's score (count)."""
    init_std: float = 0.1
    """Initial standard deviation of every parameter (parameter units)."""
    noise_floor: float = 0.05
    """Extra standard deviation added to the elite's at each refit (parameter units)."""
    noise_decay: float = 1.0
    """Factor applied to the extra standard deviation after every iteration (1 keeps it constant)."""
    deterministic: bool = True
    """Candidates act with their mode (argmax or mean action); false samples their policy."""

    def __post_init__(self) -> None:
        check(self.population >= 2, f"algo.population={self.population} must be >= 2")
        check(0.0 < self.elite_frac <= 1.0, f"algo.elite_frac={self.elite_frac} must be in (0, 1]")
        check(self.episodes_per_candidate >= 1,
              f"algo.episodes_per_candidate={self.episodes_per_candidate} must be >= 1")
        check(self.init_std > 0, f"algo.init_std={self.init_std} must be > 0")
        check(self.noise_floor >= 0, f"algo.noise_floor={self.noise_floor} must be >= 0")
        check(0.0 < self.noise_decay <= 1.0, f"algo.noise_decay={self.noise_decay} must be in (0, 1]")

    @property
    def num_elite(self) -> int:
        return max(1, round(self.elite_frac * self.population))


@dataclass
class DAggerConfig(ImitationConfig):
    name: str = "dagger"
    rounds: int = 10
    """Aggregation rounds after the initial behavioral cloning (count)."""
    episodes_per_round: int = 5
    """Episodes rolled out and labelled by the expert per round (count)."""
    beta_schedule: str = "exponential"
    """Probability β_i of executing the expert's action in round i: exponential, linear or zero."""
    beta0: float = 0.5
    """Base of the β schedule (probability): beta0^i, or beta0 decayed linearly."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.rounds >= 0, f"algo.rounds={self.rounds} must be >= 0")
        check(self.episodes_per_round >= 1, f"algo.episodes_per_round={self.episodes_per_round} must be >= 1")
        check(
            self.beta_schedule in ("exponential", "linear", "zero"),
            f"algo.beta_schedule={self.beta_schedule!r} must be exponential, linear or zero",
        )
        check(0.0 <= self.beta0 <= 1.0, f"algo.beta0={self.beta0} must be in [0, 1]")


@dataclass
class DDPGConfig(DeterministicConfig):
    name: str = "ddpg"


@dataclass
class DQNConfig(TDControlConfig):
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
        check(self.buffer_size >= 1, f"algo.buffer_size={self.buffer_size} must be >= 1")
        check(
            self.learning_starts >= 0, f"algo.learning_starts={self.learning_starts} must be >= 0"
        )
        check(self.batch_size >= 1, f"algo.batch_size={self.batch_size} must be >= 1")
        check(self.train_every >= 1, f"algo.train_every={self.train_every} must be >= 1")
        check(self.gradient_steps >= 1, f"algo.gradient_steps={self.gradient_steps} must be >= 1")
        check(
            self.target_update_every >= 1,
            f"algo.target_update_every={self.target_update_every} must be >= 1",
        )
        check(0.0 < self.tau <= 1.0, f"algo.tau={self.tau} must be in (0, 1]; 1 means hard copies")


@dataclass
class GRPOConfig(LMConfig):
    name: str = "grpo"
    prompts_per_batch: int = 16
    """Prompts sampled per RL iteration (count); each is answered group_size times."""
    group_size: int = 4
    """Responses sampled per prompt, G (count, at least 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.group_size >= 2, f"algo.group_size={self.group_size} must be >= 2; e.g. algo.group_size=4")


@dataclass
class NPGConfig(NaturalPGConfig):
    name: str = "npg"
    truncated: bool = True
    """Solve F x = g by conjugate gradient (TNPG); false forms F explicitly and solves it exactly."""
    max_explicit_params: int = 1000
    """Largest policy (parameters) for which truncated=false may form the P x P Fisher matrix (count)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_explicit_params >= 1,
              f"algo.max_explicit_params={self.max_explicit_params} must be >= 1")


@dataclass
class OffPACConfig(AlgoConfig):
    name: str = "offpac"
    num_steps: int = 8
    """Rollout length per environment between updates (env steps)."""
    gamma: float = 0.99
    """Discount factor per env step."""
    gae_lambda: float = 1.0
    """Trace coefficient λ of the V-trace targets (c_t = λ min(1, ρ_t)); 1 gives n-step targets."""
    behaviour_lag: int = 4
    """Updates between copies of the target policy into the behaviour policy (count; 1: on-policy)."""
    max_is_weight: float = 1.0
    """Truncation level of the importance weights ρ̄ = min(max_is_weight, ρ) (ratio units)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient of the target policy (loss units per nat)."""
    vf_coef: float = 0.5
    """Value loss coefficient (loss units per squared return unit; the value loss is the MSE)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""
    norm_adv: bool = False
    """Normalise advantages per rollout to zero mean, unit std (before the importance weights)."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.behaviour_lag >= 1, f"algo.behaviour_lag={self.behaviour_lag} must be >= 1")
        check(self.max_is_weight > 0, f"algo.max_is_weight={self.max_is_weight} must be > 0; e.g. 1.0")
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class PPOConfig(PPOFamilyConfig):
    name: str = "ppo"


@dataclass
class PPOKLConfig(PPOFamilyConfig):
    name: str = "ppo_kl"
    kl_target: float = 0.01
    """Target mean KL(π_old || π) per update phase, d_targ (nats)."""
    beta_init: float = 1.0
    """Initial KL penalty coefficient β (loss units per nat)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.kl_target > 0, f"algo.kl_target={self.kl_target} must be > 0; e.g. algo.kl_target=0.01")
        check(self.beta_init > 0, f"algo.beta_init={self.beta_init} must be > 0; e.g. algo.beta_init=1.0")


@dataclass
class PPOLMConfig(LMConfig):
    name: str = "ppo_lm"
    gamma: float = 1.0
    """Discount factor per response token (1 in the book's eq. 15.11)."""
    gae_lambda: float = 0.95
    """GAE lambda over the response tokens (1 gives the reward-to-go minus the value)."""
    vf_coef: float = 0.1
    """Value loss coefficient (loss units)."""
    clip_vloss: bool = True
    """Clip value updates to clip_coef around the values at sampling time."""
    norm_adv: bool = True
    """Whiten advantages over each batch to zero mean, unit std."""
    normalize_reward: bool = True
    """Normalise reward-model scores by their running mean and std."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_discount("algo.gamma", self.gamma)
        check(0.0 <= self.gae_lambda <= 1.0, f"algo.gae_lambda={self.gae_lambda} must be in [0, 1]")
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")


@dataclass
class ReinforceConfig(AlgoConfig):
    name: str = "reinforce"
    gamma: float = 0.99
    """Discount factor per env step."""
    episodes_per_batch: int = 8
    """Whole episodes per gradient step, summed over the training envs (count)."""
    reward_to_go: bool = True
    """Weight step t by the return after t (causality); false uses the whole episode's return."""
    baseline: bool = True
    """Subtract a learned state value V(s_t) from the returns; the critic regresses on them."""
    norm_adv: bool = True
    """Normalise the batch's returns or advantages to zero mean, unit std."""
    value_steps: int = 5
    """Full-batch critic gradient steps per batch (count); used with the baseline."""
    value_lr: float | None = None
    """Critic learning rate (per gradient step); null uses optimizer.lr."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (loss units per nat)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (L2 norm); 0 disables clipping."""

    def __post_init__(self) -> None:
        check_discount("algo.gamma", self.gamma)
        check(self.episodes_per_batch >= 1, f"algo.episodes_per_batch={self.episodes_per_batch} must be >= 1")
        check(self.value_steps >= 1, f"algo.value_steps={self.value_steps} must be >= 1")
        check(self.value_lr is None or self.value_lr > 0, f"algo.value_lr={self.value_lr} must be > 0 or null")
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class RLHFConfig(PPOFamilyConfig):
    name: str = "rlhf"
    base: str = "ppo"
    """Policy optimiser on the learned reward: ppo (rlrun.algos.ppo, with all of its algo.* fields)."""
    segment_len: int = 25
    """Length k of each trajectory segment (env steps)."""
    annotations_per_iteration: int = 16
    """Pairs of segments annotated after each rollout while the budget lasts (count)."""
    total_annotations: int = 500
    """Annotation budget of the run (pairs)."""
    pair_selection: str = "disagreement"
    """How pairs are chosen: random, or disagreement (highest variance of the members' P(σ¹ ≻ σ²))."""
    candidate_pairs: int = 256
    """Random pairs among which `disagreement` picks the ones to annotate (count)."""
    annotator: str = "flip"
    """Synthetic annotator: flip (higher true return wins, flipped at random) or boltzmann."""
    annotator_noise: float = 0.0
    """Flip probability (flip) or temperature in true-return units (boltzmann); 0 is noiseless."""
    tie_margin: float = 0.0
    """True-return difference up to which a pair is labelled a tie, μ = 0.5 (return units)."""
    ensemble: int = 3
    """Reward-model members (count)."""
    rm_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer widths of each reward-model MLP (units)."""
    rm_lr: float = 1e-3
    """Reward-model learning rate (per gradient step)."""
    rm_weight_decay: float = 1e-4
    """Reward-model decoupled weight decay coefficient (AdamW, per step and unit of lr)."""
    rm_epochs: int = 3
    """Passes over the comparisons after each batch of new annotations (count)."""
    rm_batch_size: int = 32
    """Comparisons per reward-model minibatch (count)."""
    val_fraction: float = 0.2
    """Share of the comparisons held out to measure the reward model (probability per comparison)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.base == "ppo", f"algo.base={self.base!r}: only ppo is supported; use algo.base=ppo")
        check(self.segment_len >= 1, f"algo.segment_len={self.segment_len} must be >= 1")
        check(self.segment_len <= self.num_steps,
              f"algo.segment_len={self.segment_len} exceeds algo.num_steps={self.num_steps}; lower it")
        check(self.annotations_per_iteration >= 1,
              f"algo.annotations_per_iteration={self.annotations_per_iteration} must be >= 1")
        check(self.total_annotations >= 2, f"algo.total_annotations={self.total_annotations} must be >= 2")
        check(self.pair_selection in ("random", "disagreement"),
              f"algo.pair_selection={self.pair_selection!r} must be random or disagreement")
        check(self.candidate_pairs >= self.annotations_per_iteration,
              f"algo.candidate_pairs={self.candidate_pairs} must be >= algo.annotations_per_iteration")
        check(self.annotator in ("flip", "boltzmann"), f"algo.annotator={self.annotator!r} must be flip or boltzmann")
        check(self.annotator_noise >= 0, f"algo.annotator_noise={self.annotator_noise} must be >= 0")
        check(self.annotator != "flip" or self.annotator_noise <= 0.5,
              f"algo.annotator_noise={self.annotator_noise} is a flip probability here; use a value in [0, 0.5]")
        check(self.tie_margin >= 0, f"algo.tie_margin={self.tie_margin} must be >= 0")
        check(self.ensemble >= 1, f"algo.ensemble={self.ensemble} must be >= 1")
        check(all(size > 0 for size in self.rm_hidden_sizes),
              f"algo.rm_hidden_sizes={list(self.rm_hidden_sizes)} must all be > 0")
        check(self.rm_lr > 0, f"algo.rm_lr={self.rm_lr} must be > 0")
        check(self.rm_weight_decay >= 0, f"algo.rm_weight_decay={self.rm_weight_decay} must be >= 0")
        check(self.rm_epochs >= 1, f"algo.rm_epochs={self.rm_epochs} must be >= 1")
        check(self.rm_batch_size >= 1, f"algo.rm_batch_size={self.rm_batch_size} must be >= 1")
        check(0.0 <= self.val_fraction < 1.0, f"algo.val_fraction={self.val_fraction} must be in [0, 1)")


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
class SarsaConfig(TDControlConfig):
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
        check(self.num_steps >= 1, f"algo.num_steps={self.num_steps} must be >= 1")
        check(self.gradient_steps >= 1, f"algo.gradient_steps={self.gradient_steps} must be >= 1")


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
class TRPOConfig(NaturalPGConfig):
    name: str = "trpo"
    num_steps: int = 2048
    """Rollout length per environment between policy updates (env steps)."""
    cg_iters: int = 15
    """Conjugate-gradient iterations for the search direction F⁻¹g (count)."""
    fvp: str = "kl_hessian"
    """Fisher-vector product: kl_hessian (Hessian of the mean KL) or fisher (sampled score outer products)."""
    max_backtracks: int = 10
    """Line-search shrinkings of the step before the update is rejected (count)."""
    backtrack_ratio: float = 0.8
    """Factor b in (0, 1) shrinking the step at each backtrack (ratio)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.fvp in FVP_KINDS, f"algo.fvp={self.fvp!r} must be kl_hessian or fisher")
        check(self.max_backtracks >= 0, f"algo.max_backtracks={self.max_backtracks} must be >= 0")
        check(0.0 < self.backtrack_ratio < 1.0,
              f"algo.backtrack_ratio={self.backtrack_ratio} must be in (0, 1); e.g. algo.backtrack_ratio=0.8")
