"""What behavioral cloning and DAgger share (book ch. 13): the policy (the `Actor`
of `rlrun.networks.actor` behind an input standardisation), the imitation loss, the held-out
split, the epoch loop and the expert demonstrations. See `rlrun.algos.bc` for the method."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rlrun.algos.configs import ImitationConfig
from rlrun.config import ConfigError, NetworkConfig, TrainConfig
from rlrun.data.demos import Demos, Expert, collect_demos, load_demos, save_demos
from rlrun.envs.factory import VecEnv, env_spaces
from rlrun.networks.actor import Actor, actor_parts
from rlrun.ops.distributions import Categorical, Distribution
from rlrun.run.checkpoint_files import CheckpointError
from rlrun.run.facade import PolicyLoader, Run, Scalars
from rlrun.training.optim import FlatOptimizer, anneal_lr, make_optimizer


class StandardizedActor(Actor):
    """π_θ(a|s): the `Actor` (torso and policy head) behind an input standardisation.

    With `normalize`, observations are mapped to (obs - mean) / std, clipped to ±`clip_obs`;
    mean and std are buffers set from the training data by `fit_normalization`.
    """

    def __init__(self, cfg: NetworkConfig, obs_space: gym.Space, action_space: gym.Space,
                 normalize: bool, clip_obs: float) -> None:
        super().__init__(*actor_parts(cfg, obs_space, action_space))
        self.normalize = normalize
        self.clip_obs = clip_obs
        shape = obs_space.shape if normalize else ()
        self.register_buffer("obs_mean", torch.zeros(shape))
        self.register_buffer("obs_std", torch.ones(shape))

    def fit_normalization(self, obs: np.ndarray) -> None:
        if self.normalize:
            self.obs_mean.copy_(torch.as_tensor(obs.mean(0)))
            self.obs_std.copy_(torch.as_tensor(np.sqrt(obs.var(0) + 1e-8)))

    def dist(self, obs: torch.Tensor) -> Distribution:
        if self.normalize:
            obs = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip_obs, self.clip_obs)
        return super().dist(obs)


def make_policy(cfg: TrainConfig, obs_space: gym.Space, action_space: gym.Space) -> StandardizedActor:
    normalize = (cfg.algo.normalize_obs and isinstance(obs_space, gym.spaces.Box)
                 and obs_space.dtype != np.uint8)
    return StandardizedActor(cfg.network, obs_space, action_space, normalize, cfg.env.clip_obs)


def check_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str = "this env") -> None:
    if isinstance(action_space, gym.spaces.Discrete):
        return
    if not (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1):
        raise ConfigError(f"imitation needs Discrete or 1-D Box actions, {env_id} has {action_space}")


def imitation_loss(dist: Distribution, actions: torch.Tensor, loss: str) -> torch.Tensor:
    """Cross-entropy (discrete), Gaussian NLL (`loss=nll`) or squared error of the mean (`loss=mse`)."""
    if isinstance(dist, Categorical) or loss == "nll":
        return -dist.log_prob(actions).mean()
    return (dist.mean - actions).square().sum(-1).mean()


def holdout_split(size: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and validation transitions (a seeded random split)."""
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(size, generator=generator)
    val_size = min(round(size * val_fraction), size - 1)
    return permutation[val_size:], permutation[:val_size]


@torch.no_grad()
def validation_metrics(actor: Actor, obs: torch.Tensor, actions: torch.Tensor, loss: str) -> dict[str, float]:
    if len(actions) == 0:
        return {}
    dist = actor.dist(obs)
    metrics = {"train/val_loss": float(imitation_loss(dist, actions, loss))}
    if isinstance(dist, Categorical):
        metrics["train/val_accuracy"] = float((dist.mode() == actions).float().mean())
    else:
        metrics["train/val_mse"] = float((dist.mean - actions).square().sum(-1).mean())
    return metrics


def train_epoch(actor: Actor, optimizer: FlatOptimizer, obs: torch.Tensor, actions: torch.Tensor,
                algo: ImitationConfig) -> float:
    """One shuffled pass of minibatch gradient steps over (obs, actions); returns the mean loss."""
    permutation = torch.randperm(len(actions), device=actions.device)
    losses = []
    for start in range(0, len(actions), algo.batch_size):
        mb = permutation[start : start + algo.batch_size]
        loss = imitation_loss(actor.dist(obs[mb]), actions[mb], algo.loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.clip_grad_norm(algo.max_grad_norm)
        optimizer.step()
        losses.append(loss.detach())
    return float(torch.stack(losses).mean())


def train_epochs(actor: Actor, optimizer: FlatOptimizer, demos: Demos, cfg: TrainConfig, run: Run, progress: Scalars,
        global_step: int, metrics: dict[str, float] | None = None) -> int:
    """Train on `demos` until `progress["epochs"]` reaches `algo.epochs`; returns the global step.

    Logs train/loss and the validation metrics after each epoch (with `metrics` added), then
    evaluates and checkpoints on schedule. Stops early at `total_timesteps` samples or a signal.
    """
    algo: ImitationConfig = cfg.algo
    train_idx, val_idx = (idx.to(run.device) for idx in holdout_split(len(demos), algo.val_fraction, cfg.seed))
    obs = torch.as_tensor(demos.obs, device=run.device)
    actions = torch.as_tensor(demos.actions, device=run.device)
    train_obs, train_actions = obs[train_idx], actions[train_idx]
    val_obs, val_actions = obs[val_idx], actions[val_idx]
    while progress["epochs"] < algo.epochs and global_step < cfg.total_timesteps and not run.should_stop:
        lr = anneal_lr(optimizer, cfg.optimizer.schedule, global_step, cfg.total_timesteps)
        loss = train_epoch(actor, optimizer, train_obs, train_actions, algo)
        global_step += len(train_actions)
        progress["epochs"] += 1
        run.log({"train/loss": loss, **validation_metrics(actor, val_obs, val_actions, algo.loss),
                 "train/lr": lr, "train/dataset_size": float(len(demos)), **(metrics or {})}, global_step)
        run.maybe_evaluate(actor, global_step)
        run.maybe_checkpoint(global_step)
    return global_step


def check_raw_envs(cfg: TrainConfig) -> None:
    """Imitation records raw observations and rewards: the envs must not normalise them."""
    if cfg.env.normalize_obs or cfg.env.normalize_reward:
        raise ConfigError(
            f"algo={cfg.algo.name} records raw observations and rewards (the policy standardises its inputs "
            "itself, algo.normalize_obs); set env.normalize_obs=false env.normalize_reward=false"
        )


def initial_demos(cfg: TrainConfig, run: Run, envs: VecEnv, expert: Expert | None) -> Demos:
    """The dataset `algo.dataset`, or `algo.expert_episodes` expert episodes saved to the run dir."""
    algo: ImitationConfig = cfg.algo
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    if algo.dataset is not None:
        demos = load_demos(algo.dataset, cfg.env.id, obs_space, action_space)
        episodes = f"{demos.num_episodes} episode{'s' * (demos.num_episodes != 1)}"
        run.logger.message(f"Read {len(demos)} transitions ({episodes}) from {algo.dataset}")
        return demos
    demos = collect_demos(expert.act, None, envs, algo.expert_episodes, run.record_episodes, run.device,
                          seed=run.env_seed)
    path = save_demos(demos, run.output_dir(), cfg.env.id, obs_space, action_space)
    returns = demos.episode_returns()
    run.logger.message(
        f"Recorded {demos.num_episodes} expert episode{'s' * (demos.num_episodes != 1)} "
        f"({len(demos)} transitions, return "
        f"{returns.mean():.2f} ± {returns.std():.2f}) to {path}"
    )
    return demos


def expert_from_checkpoint(load_policy: PolicyLoader, checkpoint: str, env_id: str, obs_space: gym.Space,
                           action_space: gym.Space, device: torch.device) -> Expert:
    """The policy of the rlrun checkpoint (file or run dir) `checkpoint`, loaded by `load_policy`
    (`rlrun.export.rebuild.load_policy`), as the expert of a run on `env_id`.

    Raises:
        ConfigError: the checkpoint is missing or not an rlrun checkpoint, was trained on
            another env id, or its spaces differ from the learner's.
    """
    try:
        loaded = load_policy(checkpoint, device)
    except CheckpointError as error:
        raise ConfigError(f"algo.expert: {error}") from None
    expert_env = loaded.train_cfg.env.id
    if expert_env != env_id:
        raise ConfigError(
            f"algo.expert={checkpoint} was trained on {expert_env}, not {env_id}; "
            f"pass an expert for {env_id} or use env={expert_env}"
        )
    expert_spaces = env_spaces(loaded.train_cfg.env)
    if expert_spaces != (obs_space, action_space):
        raise ConfigError(
            f"algo.expert={checkpoint} acts in {expert_spaces[0]} / {expert_spaces[1]}, this env in "
            f"{obs_space} / {action_space} (different env.kwargs?); use an expert trained with the same env config"
        )
    return Expert(loaded.policy, loaded.obs_normalizer(obs_space), action_space, device)


def load_expert(cfg: TrainConfig, run: Run, envs: VecEnv, required: bool) -> Expert | None:
    """The expert of `algo.expert` (refusing a run without expert and dataset)."""
    algo: ImitationConfig = cfg.algo
    if algo.expert is None:
        if required and algo.dataset is not None:
            raise ConfigError(
                f"algo={algo.name} needs an expert: algo.expert=<rlrun checkpoint or run dir> labels "
                "the states its rollouts visit (algo.dataset only replaces the initial expert episodes)"
            )
        if required or algo.dataset is None:
            raise ConfigError(
                f"algo={algo.name} needs an expert: algo.expert=<rlrun checkpoint or run dir>"
                + ("" if required else " (or algo.dataset=<.npz file, Minari dataset dir or id>)")
            )
        return None
    if run.launch.load_policy is None:
        raise ConfigError(f"algo.expert={algo.expert}: this run was started without a checkpoint loader; "
                          "start it with the rlrun command or rlrun.train")
    return expert_from_checkpoint(run.launch.load_policy, algo.expert, cfg.env.id, envs.single_observation_space,
                                  envs.single_action_space, run.device)


def setup(cfg: TrainConfig, run: Run, expert_required: bool) -> tuple[VecEnv, Expert | None, Actor, FlatOptimizer,
                                                                        Demos, Scalars]:
    """Envs, expert, policy, optimizer, dataset and progress counters, tracked for checkpoints."""
    check_raw_envs(cfg)
    envs = run.make_envs()
    expert = load_expert(cfg, run, envs, expert_required)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    actor = make_policy(cfg, obs_space, action_space).to(run.device)
    optimizer = make_optimizer(actor.parameters(), cfg.optimizer)
    demos = Demos.empty(obs_space, action_space)
    progress = Scalars(epochs=0, round=0)
    run.track(actor=actor, optimizer=optimizer, demos=demos, progress=progress)
    return envs, expert, actor, optimizer, demos, progress
