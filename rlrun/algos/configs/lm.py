"""The configs of the language-model algorithms (PPO-LM, GRPO) and the stages they share (bases
listed last-first, see `rlrun.algos.configs.mixins`)."""

from __future__ import annotations

from dataclasses import dataclass

from rlrun.algos.configs.mixins import GAE, Discounted
from rlrun.config import AlgoConfig, check


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
        super().__post_init__()
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
class PPOLMConfig(GAE, Discounted, LMConfig):
    name: str = "ppo_lm"
    gamma: float = 1.0
    """Discount factor per response token (1 in the book's eq. 15.11)."""
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
        check(self.vf_coef >= 0, f"algo.vf_coef={self.vf_coef} must be >= 0")


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
