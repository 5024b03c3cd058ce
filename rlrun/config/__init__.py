"""Structured config schemas, registered in Hydra's ConfigStore.

Every field carries a one-line docstring with its unit. The yaml files under `conf/` fill
these schemas; a typo, a wrong type or an invalid value is refused before anything runs.
Values are validated in `__post_init__`, which runs when `OmegaConf.to_object` builds the
typed config (see `rlrun.cli.train_command`). The schemas of the groups (env, network, optimizer, logger) are
in `rlrun.config.groups`, `ConfigError` and the checks in `rlrun.config.checks`; every name of
either is importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from rlrun.config.checks import ConfigError, check, check_discount, check_targets
from rlrun.config.groups import (
    NETWORK_SCHEMAS,
    OPTIMIZER_FIELDS,
    EnvConfig,
    HFNetworkConfig,
    LMNetworkConfig,
    LoggerConfig,
    NetworkConfig,
    OptimizerConfig,
)

__all__ = [  # the schemas of the whole config, its groups (`rlrun.config.groups`) and checks
    "AUTO_THREADS",
    "NETWORK_SCHEMAS",
    "OPTIMIZER_FIELDS",
    "AlgoConfig",
    "CheckpointConfig",
    "ConfigError",
    "DivergenceConfig",
    "EnvConfig",
    "EvalConfig",
    "EvalRunConfig",
    "HFNetworkConfig",
    "HparamsSearchConfig",
    "LMNetworkConfig",
    "LoggerConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "ResumeConfig",
    "StopConfig",
    "TrainConfig",
    "check",
    "check_discount",
    "check_targets",
    "register_schemas",
]


AUTO_THREADS = "auto"
"""The `torch_threads` value that lets `rlrun.run.threads.ThreadGovernor` choose the count."""


@dataclass
class EvalConfig:
    episodes: int = 10
    """Evaluation episodes per evaluation (count)."""
    every_steps: int = 50_000
    """Evaluate every this many env steps (0 disables periodic evaluation; the final one runs)."""
    deterministic: bool = True
    """Act with the mean/argmax action instead of sampling."""
    num_envs: int = 5
    """Parallel evaluation environments (count)."""
    max_episode_steps: int | None = None
    """Time limit of an evaluation episode (env steps; reaching it ends the episode); null uses
    the training envs' limit (env.max_episode_steps)."""
    seed_offset: int = 1_000_003
    """Evaluation envs are seeded with seed + seed_offset, apart from training envs."""
    video: bool = False
    """rlrun-eval only: record evaluation episodes to MP4 files in the run's eval/ dir."""
    video_episodes: int = 1
    """Episodes recorded when `video` is on (count, at most `episodes`)."""
    export: str | None = None
    """rlrun-eval only: write the policy beside the checkpoint as torchscript or onnx (null: no export)."""
    dataset: str | None = None
    """rlrun-eval only: record the episodes as this local Minari dataset id, namespace/name-v0."""
    dataset_overwrite: bool = False
    """rlrun-eval only: replace an existing Minari dataset of the same id (flag; false refuses)."""

    def __post_init__(self) -> None:
        check(self.episodes >= 1, f"eval.episodes={self.episodes} must be >= 1")
        check(self.every_steps >= 0, f"eval.every_steps={self.every_steps} must be >= 0")
        check(self.num_envs >= 1, f"eval.num_envs={self.num_envs} must be >= 1")
        check(
            self.max_episode_steps is None or self.max_episode_steps > 0,
            f"eval.max_episode_steps={self.max_episode_steps} must be > 0 or null",
        )
        check(
            1 <= self.video_episodes <= self.episodes,
            f"eval.video_episodes={self.video_episodes} must be in [1, eval.episodes={self.episodes}]",
        )
        check(
            self.export in (None, "torchscript", "onnx"),
            f"eval.export={self.export!r} must be torchscript, onnx or null",
        )


@dataclass
class CheckpointConfig:
    every_steps: int = 100_000
    """Write checkpoints/last.pt every this many env steps (and always at the end)."""
    keep: int = 3
    """Numbered checkpoints kept besides last.pt and best.pt (count; 0 keeps none)."""

    def __post_init__(self) -> None:
        check(self.every_steps > 0, f"checkpoint.every_steps={self.every_steps} must be > 0")
        check(self.keep >= 0, f"checkpoint.keep={self.keep} must be >= 0")


@dataclass
class ResumeConfig:
    path: str | None = None
    """Run dir or checkpoint file to continue from (`resume=<path>` sets it); null starts fresh,
    or resumes the run dir's own checkpoint when it has one."""
    allow_config_change: bool = False
    """Resume although the config differs from the checkpoint's (the differing keys are printed)."""


@dataclass
class DivergenceConfig:
    on_nan: str = "stop"
    """On a non-finite gradient: stop (exit 1, last good checkpoint kept) or skip_update (count it)."""

    def __post_init__(self) -> None:
        check(
            self.on_nan in ("stop", "skip_update"),
            f"divergence.on_nan={self.on_nan!r} must be stop or skip_update",
        )


@dataclass
class StopConfig:
    eval_return: float | None = None
    """End training once an evaluation's mean return reaches this value (return units); null:
    no target."""
    patience: int | None = None
    """End training after this many evaluations in a row without a new best mean return
    (count); null: never."""
    min_delta: float = 0.0
    """Rise over the best mean return so far that makes an evaluation a new best for `patience`
    (return units)."""

    def __post_init__(self) -> None:
        check(
            self.patience is None or self.patience >= 1,
            f"stop.patience={self.patience} must be >= 1 (evaluations) or null",
        )
        check(self.min_delta >= 0, f"stop.min_delta={self.min_delta} must be >= 0")

    @property
    def active(self) -> bool:
        """Whether a rule can end training (`eval_return` or `patience` is set)."""
        return self.eval_return is not None or self.patience is not None


@dataclass
class HparamsSearchConfig:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds each trial trains with (one run per seed); its objective is their mean final eval return."""

    def __post_init__(self) -> None:
        check(
            len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds) and min(self.seeds) >= 0,
            f"hparams_search.seeds={list(self.seeds)} must be distinct seeds >= 0, e.g. [0,1,2]",
        )


@dataclass
class AlgoConfig:
    name: str = MISSING
    """Registered algorithm name (group choice `algo=<name>`)."""

    def __post_init__(self) -> None:
        """Nothing to check here: a subclass, or a block of fields, calls this first and then
        checks its own fields, so that a config built from several blocks checks them all."""


@dataclass
class TrainConfig:
    algo: Any = MISSING
    """Algorithm config (group `algo`)."""
    env: EnvConfig = MISSING
    """Environment config (group `env`)."""
    network: Any = MISSING
    """Network config (group `network`: NetworkConfig, LMNetworkConfig or HFNetworkConfig)."""
    optimizer: OptimizerConfig = MISSING
    """Optimizer config (group `optimizer`)."""
    logger: LoggerConfig = MISSING
    """Logging back-ends (group `logger`)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation protocol."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint schedule and retention."""
    seed: int = 0
    """Seed of every random number generator (python, numpy, torch, envs)."""
    device: str = "auto"
    """Compute device: auto (cuda when available), cpu or cuda (or cuda:N)."""
    total_timesteps: int = 1_000_000
    """Training budget (env steps summed over all training envs)."""
    resume: ResumeConfig = field(default_factory=ResumeConfig)
    """Where to continue from (`resume=<run dir or checkpoint>`) and whether the config may change."""
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    """What to do when training diverges (non-finite gradients)."""
    stop: StopConfig = field(default_factory=StopConfig)
    """Stopping rules that end training before `total_timesteps` (a target return, patience)."""
    callbacks: list[Any] = field(default_factory=list)
    """User objects called at points of training, `[{_target_: <import path>, <keyword>: <value>}]`
    or import paths; their hooks get copies and cannot change training (`rlrun.callbacks`)."""
    torch_threads: int | str = 1
    """Torch intra-op CPU threads (count; 1 is fastest for small MLPs on shared cores), or auto:
    1 or up to 4, whichever trains more steps per second, measured while training (`rlrun.run.threads`)."""
    numpy_acting: bool = True
    """Sample rollout actions in numpy when the policy is an MLP on the CPU acting for <= 64 envs
    (a quarter of torch's per-step cost there); false always acts with torch."""
    deterministic: bool = False
    """Bitwise-repeatable runs and resumes: deterministic torch kernels, in-process envs."""
    compile: bool = False
    """Run the minibatch forward pass and loss through torch.compile (ppo, rlhf). Needs a C++
    compiler and costs a one-off 5-20 s compile; on CPU it then cuts PPO's update time by about
    40%, which pays from about 100k steps (README, Speed)."""
    hparams_search: HparamsSearchConfig | None = None
    """Set by `hparams_search=<name>`: a job trains once per seed, in <job dir>/seed_<k>; null: once."""

    def __post_init__(self) -> None:
        check(
            self.total_timesteps > 0,
            f"total_timesteps={self.total_timesteps} must be > 0; e.g. total_timesteps=100000",
        )
        check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            f"device={self.device!r} must be auto, cpu or cuda",
        )
        check(
            self.torch_threads == AUTO_THREADS or (isinstance(self.torch_threads, int) and self.torch_threads >= 1),
            f"torch_threads={self.torch_threads} must be a count >= 1 or auto; e.g. torch_threads=1",
        )
        check(
            not (self.deterministic and self.torch_threads == AUTO_THREADS),
            "deterministic=true needs a fixed thread count (results change with it); set torch_threads=1",
        )
        check(
            not (self.deterministic and self.env.vectorization == "async"),
            "deterministic=true needs in-process envs; set env.vectorization=sync",
        )
        check(
            not (self.deterministic and self.env.backend == "envpool"),
            "deterministic=true resumes by replaying Gymnasium episodes; set env.backend=gymnasium",
        )
        check(self.seed >= 0, f"seed={self.seed} must be >= 0")
        check(
            not (self.stop.active and self.eval.every_steps == 0),
            "stop.eval_return and stop.patience act on periodic evaluations, which "
            "eval.every_steps=0 turns off; set eval.every_steps=<env steps>, e.g. 10000",
        )
        check_targets("callbacks", "callback", self.callbacks,
                      "callbacks=[{_target_:rlrun.callbacks.Echo}]")
        check(
            not self.eval.video and self.eval.export is None and self.eval.dataset is None,
            "eval.video, eval.export and eval.dataset apply to rlrun-eval only; after training run "
            "`rlrun-eval checkpoint=<run dir> eval.video=true` (or eval.export=torchscript|onnx, "
            "eval.dataset=<namespace/name-v0>)",
        )


@dataclass
class EvalRunConfig:
    checkpoint: str = MISSING
    """Checkpoint file (or run dir) to evaluate."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation protocol."""
    device: str = "auto"
    """Compute device: auto, cpu or cuda."""
    seed: int | None = None
    """Seed of the evaluation envs (plus eval.seed_offset); null: the run's own seed, as its evaluations used."""
    torch_threads: int = 1
    """Torch intra-op CPU threads."""


def _train_schema() -> DictConfig:
    """TrainConfig with `env.kwargs` open to new keys: Hydra closes every dict of a composed
    config (free-form ones too), so that `env.kwargs.<name>=<value>` would need a `+`."""
    node = OmegaConf.structured(TrainConfig)
    node.env = OmegaConf.structured(EnvConfig)
    OmegaConf.set_struct(node.env.kwargs, False)
    return node


def register_schemas(algo_schemas: dict[str, type]) -> None:
    """Register the top-level schemas and each algorithm, network and optimizer choice's (used by
    `conf/<group>/<name>.yaml`)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=_train_schema())
    store.store(name="eval_schema", node=EvalRunConfig)
    for name, schema in algo_schemas.items():
        store.store(group="algo", name=f"{name}_schema", node=schema)
    for name, schema in NETWORK_SCHEMAS.items():
        store.store(group="network", name=f"{name}_schema", node=schema(name=name))
    for name in OPTIMIZER_FIELDS:
        store.store(group="optimizer", name=f"{name}_schema", node=OptimizerConfig(name=name))
