"""The configs of the imitation algorithms: behavioral cloning and DAgger."""

from __future__ import annotations

from dataclasses import dataclass

from rlrun.config import AlgoConfig, check


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
        super().__post_init__()
        check(self.expert_episodes >= 1, f"algo.expert_episodes={self.expert_episodes} must be >= 1")
        check(self.loss in ("nll", "mse"), f"algo.loss={self.loss!r} must be nll or mse")
        check(self.epochs >= 1, f"algo.epochs={self.epochs} must be >= 1")
        check(self.batch_size >= 1, f"algo.batch_size={self.batch_size} must be >= 1")
        check(0.0 <= self.val_fraction < 1.0, f"algo.val_fraction={self.val_fraction} must be in [0, 1)")
        check(self.max_grad_norm >= 0, f"algo.max_grad_norm={self.max_grad_norm} must be >= 0")


@dataclass
class BCConfig(ImitationConfig):
    name: str = "bc"


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
