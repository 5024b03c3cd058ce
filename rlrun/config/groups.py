"""The schemas of the config groups a training run picks: `env`, `network` (one schema per kind
of network), `optimizer` and `logger` (`rlrun.config` registers them, every field with a
one-line docstring that states its unit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from rlrun.config.checks import check, check_targets


@dataclass
class EnvConfig:
    id: str = MISSING
    """Gymnasium environment id, e.g. CartPole-v1 (group choice `env=<id>`)."""
    family: str = "other"
    """Preset family (classic, mujoco, atari, box2d, other); picks `conf/preset/<algo>_<family>`."""
    imports: list[str] = field(default_factory=list)
    """Modules imported before the env is made, which register its id (module names, e.g.
    [minigrid], [highway_env], [gymnasium_robotics], or a module of your own); the current
    directory is importable."""
    entry_point: str | None = None
    """`<module>:<Class>` of an env class that no module registers, made with env.kwargs and
    registered under the `env=` name (default: the class name)."""
    num_envs: int = 1
    """Parallel training environments (count)."""
    vectorization: str = "sync"
    """Vector env kind: sync (one process) or async (one subprocess per env)."""
    backend: str = "gymnasium"
    """Env implementation: gymnasium, or envpool (EnvPool's C++ MuJoCo and classic-control envs;
    the envpool extra, Linux x86-64)."""
    threads: int = 1
    """Worker threads stepping the envs of env.backend=envpool (count)."""
    normalize_obs: bool = False
    """Running mean/std observation normalisation, frozen at evaluation."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (training only)."""
    clip_obs: float = 10.0
    """Clip normalised observations to [-clip_obs, clip_obs] (std units)."""
    clip_reward: float = 10.0
    """Clip normalised rewards to [-clip_reward, clip_reward] (std units)."""
    max_episode_steps: int | None = None
    """Time limit of an episode (env steps; reaching it is a truncation); null keeps the one
    Gymnasium registers, and an env registered without one gets `unlimited_max_episode_steps`."""
    unlimited_max_episode_steps: int = 1000
    """Time limit for envs Gymnasium registers without one (env steps; e.g. CliffWalking), so
    that no episode runs forever; Atari games keep ALE's own frame limit."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the env's constructor, passed through gymnasium.make
    (`env.kwargs.<name>=<value>`, typed: true, 8, 0.5, [1,2], text)."""
    wrappers: list[Any] = field(default_factory=list)
    """Gymnasium wrappers applied in order to each env as made, before rlrun's own (time limit,
    observation flattening, Atari preprocessing, normalisation): `{_target_: <import path>,
    <keyword>: <value>, ...}`, or the import path alone."""

    def __post_init__(self) -> None:
        check(self.num_envs >= 1, f"env.num_envs={self.num_envs} must be >= 1")
        check(
            self.vectorization in ("sync", "async"),
            f"env.vectorization={self.vectorization!r} must be sync or async",
        )
        check(
            self.backend in ("gymnasium", "envpool"),
            f"env.backend={self.backend!r} must be gymnasium or envpool",
        )
        check(self.threads >= 1, f"env.threads={self.threads} must be >= 1")
        check(
            not (self.backend == "envpool" and self.vectorization == "async"),
            "env.backend=envpool steps its envs in its own threads; drop env.vectorization=async "
            "(set env.threads instead)",
        )
        check(
            not (self.backend == "envpool" and self.family == "atari"),
            f"env.backend=envpool is not wired for Atari ({self.id}) yet; use env.backend=gymnasium",
        )
        check_targets("env.wrappers", "wrapper", self.wrappers,
                      "env.wrappers=[gymnasium.wrappers.FlattenObservation]")
        check(
            not (self.backend == "envpool" and self.wrappers),
            "env.wrappers wrap Gymnasium's envs; drop env.backend=envpool",
        )
        check(self.clip_obs > 0, f"env.clip_obs={self.clip_obs} must be > 0")
        check(self.clip_reward > 0, f"env.clip_reward={self.clip_reward} must be > 0")
        check(
            self.max_episode_steps is None or self.max_episode_steps > 0,
            f"env.max_episode_steps={self.max_episode_steps} must be > 0 or null",
        )
        check(
            self.unlimited_max_episode_steps > 0,
            f"env.unlimited_max_episode_steps={self.unlimited_max_episode_steps} must be > 0",
        )


@dataclass
class NetworkConfig:
    name: str = "mlp"
    """Torso kind: mlp (vector observations) or cnn (Nature CNN for image observations); the
    language task's networks are `LMNetworkConfig` and `HFNetworkConfig`."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer widths of each MLP (units); the CNN's dense layer is the last."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu, elu, gelu or silu."""
    init: str = "orthogonal"
    """Weight init: orthogonal (gain sqrt(2) hidden, 0.01 policy head, 1 value head) or default."""
    shared: bool = False
    """Share one torso between actor and critic (separate networks if false)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian policies (nats)."""

    def __post_init__(self) -> None:
        check(self.name in ("mlp", "cnn"), f"network.name={self.name!r} must be mlp or cnn")
        check(
            all(size > 0 for size in self.hidden_sizes),
            f"network.hidden_sizes={list(self.hidden_sizes)} must all be > 0",
        )
        check(
            self.activation in ("tanh", "relu", "elu", "gelu", "silu"),
            f"network.activation={self.activation!r} must be tanh, relu, elu, gelu or silu",
        )
        check(
            self.init in ("orthogonal", "default"),
            f"network.init={self.init!r} must be orthogonal or default",
        )


@dataclass
class LMNetworkConfig:
    name: str = "lm"
    """The small causal transformer of the language task env=lm (`network=lm`)."""
    layers: int = 2
    """Transformer blocks (count)."""
    width: int = 64
    """Residual stream width (units per token)."""
    heads: int = 4
    """Attention heads (count; must divide `width`)."""

    def __post_init__(self) -> None:
        check(self.name == "lm", f"network.name={self.name!r} must be lm for this schema")
        check(self.layers >= 1, f"network.layers={self.layers} must be >= 1")
        check(
            self.heads >= 1 and self.width % self.heads == 0,
            f"network.heads={self.heads} must be >= 1 and divide network.width={self.width}",
        )


@dataclass
class HFNetworkConfig:
    name: str = "hf_lm"
    """A local Hugging Face causal LM as policy of the language task (`network=hf_lm`)."""
    path: str | None = None
    """Local model directory (loaded with local_files_only; written by save_pretrained)."""

    def __post_init__(self) -> None:
        check(self.name == "hf_lm", f"network.name={self.name!r} must be hf_lm for this schema")


NETWORK_SCHEMAS = {"mlp": NetworkConfig, "cnn": NetworkConfig, "lm": LMNetworkConfig, "hf_lm": HFNetworkConfig}
"""The schema of each `network=<name>` choice."""


@dataclass
class OptimizerConfig:
    name: str = "adam"
    """Optimizer: adam, adamw, sgd or rmsprop."""
    lr: float = 3e-4
    """Initial learning rate (per gradient step)."""
    eps: float = 1e-5
    """Denominator epsilon of adam/adamw/rmsprop."""
    weight_decay: float = 0.0
    """L2 weight decay coefficient (decoupled for adamw)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam/AdamW moment decay rates."""
    momentum: float = 0.0
    """Momentum of sgd and rmsprop."""
    alpha: float = 0.99
    """RMSprop smoothing constant."""
    schedule: str = "constant"
    """Learning-rate schedule over training: constant or linear (annealed to 0 at the end)."""

    def __post_init__(self) -> None:
        check(
            self.name in OPTIMIZER_FIELDS,
            f"optimizer.name={self.name!r} must be adam, adamw, sgd or rmsprop",
        )
        check(self.lr > 0, f"optimizer.lr={self.lr} must be > 0; use e.g. optimizer.lr=3e-4")
        check(self.eps > 0, f"optimizer.eps={self.eps} must be > 0")
        check(self.weight_decay >= 0, f"optimizer.weight_decay={self.weight_decay} must be >= 0")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"optimizer.betas={list(self.betas)} must be two values in [0, 1)",
        )
        check(
            self.schedule in ("constant", "linear"),
            f"optimizer.schedule={self.schedule!r} must be constant or linear",
        )


OPTIMIZER_FIELDS = {
    "adam": ("lr", "eps", "weight_decay", "betas", "schedule"),
    "adamw": ("lr", "eps", "weight_decay", "betas", "schedule"),
    "rmsprop": ("lr", "eps", "weight_decay", "momentum", "alpha", "schedule"),
    "sgd": ("lr", "weight_decay", "momentum", "schedule"),
}
"""The `OptimizerConfig` fields each `optimizer=<name>` choice reads (the others do not apply)."""


@dataclass
class LoggerConfig:
    console: bool = True
    """Rich progress bar and metric tables on the console (plain lines when not a terminal)."""
    jsonl: bool = True
    """Append metrics to metrics.jsonl in the run dir."""
    tensorboard: bool = False
    """Write TensorBoard events under tb/ in the run dir."""
    wandb: bool = False
    """Log to Weights & Biases under wandb/ in the run dir (WANDB_MODE=offline works)."""
    wandb_project: str = "rlrun"
    """Weights & Biases project name."""
    wandb_entity: str | None = None
    """Weights & Biases entity (team or user); null uses the default."""
    wandb_group: str | None = None
    """Weights & Biases group; null: a sweep's jobs share the sweep's name, a lone run has none."""
    wandb_name: str | None = None
    """Weights & Biases display name of the run; null uses the run dir's name."""
    wandb_tags: list[str] = field(default_factory=list)
    """Weights & Biases tags of the run (a list of words, e.g. [baseline,v2])."""
    wandb_notes: str | None = None
    """Weights & Biases notes of the run (free text); null adds none."""
    mlflow: bool = False
    """Log to MLflow: config as params, metrics by env step, final checkpoint and eval summary."""
    mlflow_uri: str | None = None
    """MLflow tracking URI (http://host:5000, sqlite:///db, file:/dir); null: mlruns/ in run dir."""
    mlflow_experiment: str = "rlrun"
    """MLflow experiment name (created when absent)."""
    on_failure: str = "fail"
    """A wandb or MLflow logger that cannot be reached at start (checked in seconds): fail (exit
    with the fix) or continue (train without it, saying so)."""
    every_steps: int = 10_000
    """Status line interval on the console and in train.log (env steps); metrics files get every event."""
    return_window: int = 100
    """Training episodes averaged by `rollout/ep_return_mean` and `rollout/ep_len_mean` (the last N)."""
    info_keys: list[str] = field(default_factory=lambda: ["is_success"])
    """Keys of each episode's final `info` averaged as `rollout/<key>` (over the return window) and
    `eval/<key>` (over the evaluation episodes), in the env's own unit; a key no episode reports
    as a number is not logged."""

    def __post_init__(self) -> None:
        check(self.every_steps > 0, f"logger.every_steps={self.every_steps} must be > 0")
        check(self.return_window > 0, f"logger.return_window={self.return_window} must be > 0")
        check(self.on_failure in ("fail", "continue"),
              f"logger.on_failure={self.on_failure} must be fail or continue")
        for key in self.info_keys:
            check(bool(key), "logger.info_keys holds an empty key; list info keys, e.g. "
                  "logger.info_keys=[is_success]")
            check(self.info_keys.count(key) == 1,
                  f"logger.info_keys lists '{key}' twice; list it once")
            check(key not in _METRIC_NAMES,
                  f"logger.info_keys: '{key}' is the name of one of rlrun's own metrics "
                  f"({', '.join(_METRIC_NAMES)}); an info key of that name cannot be logged")


_METRIC_NAMES = ("ep_return_mean", "ep_len_mean", "episodes", "return_mean", "return_std",
                 "return_iqm")
"""The names rlrun logs under `rollout/` and `eval/`, which an info key may not take."""
