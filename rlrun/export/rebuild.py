"""Rebuild the acting policy of an rlrun checkpoint (for `rlrun-eval` and for expert policies).

The checkpoint is read with `weights_only=True` (`rlrun.run.checkpoint_files.load_checkpoint`); its
resolved config (a YAML string) is merged into the algorithm's schema, the policy is built by
the algorithm's `make_policy` for the stored env's spaces and loaded from `modules[policy_key]`.
`env_variant` gives the env config of a variant of the training env (`rlrun-eval <run>
env.id=... env.kwargs.<name>=...`) that the policy can act in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from rlrun.config import NETWORK_SCHEMAS, ConfigError, EnvConfig, TrainConfig
from rlrun.envs.normalize import ObsNormalizer
from rlrun.registry import algorithms
from rlrun.run.checkpoint_files import CheckpointError, load_checkpoint, resolve_checkpoint
from rlrun.run.resume import check_python_env, known_part

if TYPE_CHECKING:
    from rlrun.envs.factory import VecEnv


@dataclass
class LoadedPolicy:
    """A checkpoint's policy (in eval mode, on the requested device) and what it was trained with."""

    policy: nn.Module
    """The acting network with `act(obs, deterministic)`, fed observations normalised as in training."""
    train_cfg: TrainConfig
    """The typed training config stored in the checkpoint."""
    obs_rms: dict[str, Any] | None
    """State of the training envs' observation statistics (`RunningMeanStd`), None if unnormalised."""
    path: Path
    """The checkpoint file."""
    algo: str
    """Name of the algorithm that wrote the checkpoint."""
    global_step: int
    """Global step of the checkpoint."""

    def obs_normalizer(self, obs_space: gym.Space) -> ObsNormalizer | None:
        """A frozen observation normaliser with the checkpoint's statistics, or None."""
        if self.obs_rms is None:
            return None
        normalizer = ObsNormalizer(obs_space.shape, self.train_cfg.env.clip_obs)
        normalizer.rms.load_state_dict(self.obs_rms)
        return normalizer

    def eval_envs(
        self, num_envs: int, env_cfg: EnvConfig | None = None,
        notify: Callable[[str], None] = print, **options: Any,
    ) -> VecEnv:
        """`num_envs` evaluation envs of the training env (or of `env_cfg`, a variant of it) that
        normalise observations with the checkpoint's frozen statistics; `options` go to
        `make_vec_env` (video, max_episode_steps, record_episodes), `notify` gets its notices."""
        from rlrun.envs.factory import make_vec_env
        from rlrun.envs.final_info import FinalInfo

        envs = make_vec_env(env_cfg or self.train_cfg.env, num_envs, training=False,
                            final_info=FinalInfo(self.train_cfg.logger.info_keys, notify), **options)
        envs.obs_normalizer = self.obs_normalizer(envs.single_observation_space)
        return envs


def load_policy(checkpoint: str | Path, device: torch.device | str = "cpu") -> LoadedPolicy:
    """Load the policy of `checkpoint` (a file, or a run dir's `checkpoints/last.pt`).

    Args:
        checkpoint: Checkpoint file or run dir.
        device: Where the policy's parameters go.

    Raises:
        CheckpointError: missing, unreadable or foreign file, unknown algorithm, or weights that
            do not fit the stored config.
    """
    from rlrun.envs.factory import env_spaces

    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)  # on the CPU; load_state_dict copies the weights to `device`
    check_python_env(path, state, "load it from Python, rlrun.load('{run}', env={env})")
    spec = algorithms().get(state["algo"])
    if spec is None:
        raise CheckpointError(f"{path} was written by algo '{state['algo']}', which this rlrun does not have "
                              "(an algorithm of another package: install that package)")
    stored = OmegaConf.create(state["config"])
    stored.pop("resume", None)  # where the run came from; not needed to rebuild its policy
    name = stored.network.get("name", "mlp")
    schema = OmegaConf.structured(TrainConfig(algo=spec.config(), network=NETWORK_SCHEMAS[name](name=name)))
    try:
        train_cfg: TrainConfig = OmegaConf.to_object(
            OmegaConf.merge(schema, known_part(OmegaConf.to_container(stored), schema))
        )
    except OmegaConfBaseException as error:
        raise CheckpointError(
            f"{path} holds a config this rlrun cannot read ({str(error).splitlines()[0]}); evaluate it "
            "with the rlrun version that wrote it"
        ) from None
    obs_space, action_space = env_spaces(train_cfg.env)
    policy = spec.make_policy(train_cfg, obs_space, action_space).to(device)
    try:
        policy.load_state_dict(state["modules"][spec.policy_key])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: network shapes do not match its config ({str(error).splitlines()[0]})"
        ) from None
    policy.eval()
    return LoadedPolicy(
        policy, train_cfg, state["modules"].get("envs", {}).get("obs_rms"), path, state["algo"],
        int(state["global_step"]),
    )


VARIANT_KEYS = (
    "env.id", "env.imports", "env.entry_point", "env.kwargs", "env.max_episode_steps",
    "env.wrappers",
)
"""The env keys `rlrun-eval` may change (and `env.kwargs.<name>`): which env the policy is
evaluated on and how it is made; the rest (normalisation, ...) stays the checkpoint's."""


def env_variant(trained: EnvConfig, overrides: list[str]) -> EnvConfig:
    """`trained` with `overrides` (`env=<id>` or `env.id=<id>`, `env.kwargs.<name>=<value>`,
    `~env.kwargs.<name>`, `env.max_episode_steps=N`, `env.wrappers=[...]`, `~env.<key>` back to
    its default) applied, refused in one line when its observation or action space differs from
    those of `trained`.

    The spaces are those the policy sees (after the wrappers and rlrun's adapters); they match
    when they are equal, or are Boxes of the same shape and dtype (other bounds: e.g. a
    pendulum with another torque limit, whose actions are clipped to its own bounds).
    """
    from rlrun.envs.config_source import env_family
    from rlrun.envs.factory import check_env_id, env_spaces
    from rlrun.envs.imports import load

    node = OmegaConf.structured(trained)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = "env.id" if override.key_or_group == "env" else override.key_or_group
        if key not in VARIANT_KEYS and not key.startswith("env.kwargs."):
            raise ConfigError(
                "rlrun-eval takes env=<id> (env.imports, env.entry_point), "
                "env.kwargs.<name>=<value>, env.max_episode_steps=N "
                f"and env.wrappers=[...] to evaluate on a variant of the training env; {key} "
                "stays the checkpoint's"
            )
        _apply(node, key.removeprefix("env."), override.value(), override.is_delete(),
               override.input_line)
    if node.id != trained.id:
        load(node.id, list(node.imports), node.entry_point)
        check_env_id(node.id)
        node.family = env_family(node.id)
    variant: EnvConfig = OmegaConf.to_object(node)
    policy_spaces, variant_spaces = env_spaces(trained), env_spaces(variant)
    if not all(map(_fits, policy_spaces, variant_spaces)):
        (obs, action), (variant_obs, variant_action) = policy_spaces, variant_spaces
        raise ConfigError(
            f"cannot evaluate on {variant.id} ({' '.join(overrides)}): its observation and action "
            f"spaces {_short(variant_obs)}, {_short(variant_action)} differ from the policy's "
            f"{_short(obs)}, {_short(action)} ({trained.id}); choose a variant with the same spaces"
        )
    return variant


def _apply(node: DictConfig, key: str, value: object, delete: bool, line: str) -> None:
    """Set (or delete) `key` of the env config `node` as the override `line` says."""
    try:
        if delete:
            parent, _, name = key.rpartition(".")
            if not parent and name != "id":  # a key of env itself: back to its default
                OmegaConf.update(node, name, OmegaConf.structured(EnvConfig)[name], merge=False)
                return
            owner = OmegaConf.select(node, parent) if parent else None
            if not isinstance(owner, DictConfig) or name not in owner:
                raise ConfigError(f"{line}: the checkpoint's env has no env.{key} to delete")
            del owner[name]
        else:
            OmegaConf.update(node, key, value, merge=False)
    except OmegaConfBaseException as error:
        raise ConfigError(f"invalid override {line}: {str(error).splitlines()[0]}") from None


def _fits(policy_space: gym.Space, space: gym.Space) -> bool:
    if isinstance(policy_space, gym.spaces.Box) and isinstance(space, gym.spaces.Box):
        return policy_space.shape == space.shape and policy_space.dtype == space.dtype
    return policy_space == space


def _short(space: gym.Space) -> str:
    """`space` in a few words (a Box by shape and dtype, not its bounds)."""
    if isinstance(space, gym.spaces.Box):
        return f"Box{space.shape} {space.dtype}"
    return str(space)
