"""Rebuild the acting policy of an rlrun checkpoint (for `rlrun-eval` and for expert policies).

The checkpoint is read with `weights_only=True` (`rlrun.checkpoint.load_checkpoint`); its
resolved config (a YAML string) is merged into the algorithm's schema, the policy is built by
the algorithm's `make_policy` for the stored env's spaces and loaded from `modules[policy_key]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from rlrun.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
from rlrun.config import NETWORK_SCHEMAS, TrainConfig
from rlrun.envs.normalize import ObsNormalizer
from rlrun.registry import algorithms
from rlrun.resume import known_part


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
    spec = algorithms().get(state["algo"])
    if spec is None:
        raise CheckpointError(f"{path} was written by algo '{state['algo']}', which this rlrun does not have")
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
