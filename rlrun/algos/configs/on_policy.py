"""The configs of the on-policy algorithms: the PPO family (PPO, PPO-KL, RLHF), A2C, Off-PAC,
REINFORCE, the natural gradient (NPG, TRPO) and the cross-entropy method (bases listed
last-first, see `rlrun.algos.configs.mixins`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlrun.algos.configs.mixins import GAE, ActorCriticLoss, Discounted, Rollout
from rlrun.config import AlgoConfig, check

FVP_KINDS = ("kl_hessian", "fisher")
"""The Fisher-vector products of the natural gradient (`algo.fvp`)."""


@dataclass
class MinibatchEpochs(Rollout):
    """A rollout split into minibatches for several epochs (the PPO family's update)."""

    num_epochs: int = 4
    """Passes over each rollout batch (count)."""
    num_minibatches: int = 4
    """Minibatches per epoch (count); minibatch size = num_envs * num_steps / num_minibatches."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_epochs >= 1, f"algo.num_epochs={self.num_epochs} must be >= 1")
        check(self.num_minibatches >= 1, f"algo.num_minibatches={self.num_minibatches} must be >= 1")


@dataclass
class ClippedSurrogate(AlgoConfig):
    """PPO's clipping of the policy ratio and of the value updates."""

    clip_coef: float = 0.2
    """Policy ratio clip range epsilon (ratio units)."""
    clip_vloss: bool = True
    """Clip value-function updates to clip_coef around the old values."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.clip_coef > 0, f"algo.clip_coef={self.clip_coef} must be > 0; e.g. algo.clip_coef=0.2")


@dataclass
class PPOFamilyConfig(ActorCriticLoss, ClippedSurrogate, GAE, Discounted, MinibatchEpochs):
    """Settings of the clipped minibatch loop shared by PPO, PPO-KL and RLHF."""

    target_kl: float | None = None
    """End the update, without stepping it, at the first minibatch whose approx KL to the old
    policy exceeds this (nats); null disables early stop."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.target_kl is None or self.target_kl > 0, f"algo.target_kl={self.target_kl} must be > 0 or null")


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
class A2CConfig(ActorCriticLoss, GAE, Discounted, Rollout):
    name: str = "a2c"
    num_steps: int = 5
    """Rollout length per environment between updates (env steps)."""
    gae_lambda: float = 1.0
    """GAE lambda (1 gives n-step returns minus the baseline)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (loss units per nat)."""
    norm_adv: bool = False
    """Normalise advantages per rollout to zero mean, unit std."""


@dataclass
class BehaviourPolicy(AlgoConfig):
    """Off-PAC's lagging behaviour policy and the truncation of its importance weights."""

    behaviour_lag: int = 4
    """Updates between copies of the target policy into the behaviour policy (count; 1: on-policy)."""
    max_is_weight: float = 1.0
    """Truncation level of the importance weights ρ̄ = min(max_is_weight, ρ) (ratio units)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.behaviour_lag >= 1, f"algo.behaviour_lag={self.behaviour_lag} must be >= 1")
        check(self.max_is_weight > 0, f"algo.max_is_weight={self.max_is_weight} must be > 0; e.g. 1.0")


@dataclass
class OffPACConfig(ActorCriticLoss, BehaviourPolicy, GAE, Discounted, Rollout):
    name: str = "offpac"
    num_steps: int = 8
    """Rollout length per environment between updates (env steps)."""
    gae_lambda: float = 1.0
    """Trace coefficient λ of the V-trace targets (c_t = λ min(1, ρ_t)); 1 gives n-step targets."""
    norm_adv: bool = False
    """Normalise advantages per rollout to zero mean, unit std (before the importance weights)."""


@dataclass
class ReinforceConfig(Discounted):
    name: str = "reinforce"
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
        super().__post_init__()
        check(self.episodes_per_batch >= 1, f"algo.episodes_per_batch={self.episodes_per_batch} must be >= 1")
        check(self.value_steps >= 1, f"algo.value_steps={self.value_steps} must be >= 1")
        check(self.value_lr is None or self.value_lr > 0, f"algo.value_lr={self.value_lr} must be > 0 or null")
        check(self.ent_coef >= 0, f"algo.ent_coef={self.ent_coef} must be >= 0")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class NaturalPGConfig(GAE, Discounted, Rollout):
    num_steps: int = 1024
    """Rollout length per environment between policy updates (env steps)."""
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
        super().__post_init__()
        check(self.max_kl > 0, f"algo.max_kl={self.max_kl} must be > 0; e.g. algo.max_kl=0.01")
        check(self.cg_iters >= 1, f"algo.cg_iters={self.cg_iters} must be >= 1; e.g. algo.cg_iters=10")
        check(self.damping >= 0, f"algo.damping={self.damping} must be >= 0; e.g. algo.damping=0.1")
        check(self.vf_lr > 0, f"algo.vf_lr={self.vf_lr} must be > 0; e.g. algo.vf_lr=1e-3")
        check(self.vf_epochs >= 1, f"algo.vf_epochs={self.vf_epochs} must be >= 1")
        check(self.vf_minibatches >= 1, f"algo.vf_minibatches={self.vf_minibatches} must be >= 1")


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
        super().__post_init__()
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
