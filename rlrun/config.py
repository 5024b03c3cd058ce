"""Structured config schemas, registered in Hydra's ConfigStore.

Every field carries a one-line docstring with its unit. The yaml files under `conf/` fill
these schemas; a typo, a wrong type or an invalid value is refused before anything runs.
Values are validated in `__post_init__`, which runs when `OmegaConf.to_object` builds the
typed config (see `rlrun.cli`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A user mistake in the configuration: the message names the key and the fix."""


AUTO_THREADS = "auto"
"""The `torch_threads` value that lets `rlrun.threads.ThreadGovernor` choose the count."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_targets(key: str, what: str, entries: list, example: str) -> None:
    """Each entry of the list at `key` names a class to make: `{_target_: <import path>, ...}` or
    the import path alone (`example` shows one)."""
    for index, entry in enumerate(entries):
        target = entry.get("_target_") if isinstance(entry, dict) else entry
        check(
            isinstance(target, str) and target != "",
            f"{key}[{index}]={entry!r} names no {what}: give {{_target_: <import path>, "
            f"<keyword>: <value>}} or the import path, e.g. {example}",
        )


def check_discount(name: str, value: float) -> None:
    check(0.0 < value <= 1.0, f"{name}={value} is outside (0, 1]; use e.g. {name}=0.99")


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
    1 or up to 4, whichever trains more steps per second, measured while training (`rlrun.threads`)."""
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
