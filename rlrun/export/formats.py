"""Self-contained policy files: TorchScript or ONNX, with normalisation and action bounds baked in.

`rlrun-eval checkpoint=PATH eval.export=torchscript|onnx` writes `<stem>.policy.pt` (load with
`torch.jit.load`) or `<stem>.policy.onnx` (run with onnxruntime) beside the checkpoint. The file
maps a float32 batch of raw observations, shape `(batch, *observation_space.shape)` whatever the
env's dtype (float64 MuJoCo states and uint8 frames alike), to env actions:

0. the cast of the float32 input to the env's observation dtype, inside the graph;
1. the frozen observation normalisation of the checkpoint (`obs_rms` mean and variance, clip),
   computed in float64 and cast to float32 exactly as `rlrun.envs.normalize.ObsNormalizer` does;
2. the policy's deterministic action, `policy.act(obs, deterministic=True)` (argmax, Gaussian
   mean, or the tanh of the mean scaled to the bounds);
3. for Box actions, clipping to the env bounds, as `VecEnv.step` does before the env sees them.

Before the file is moved into place, its actions on a batch of observations sampled from the
observation space are compared with those of the checkpoint's policy acting through rlrun's own
normaliser: discrete actions must be equal, continuous ones equal within 1e-5.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlrun.config import ConfigError
from rlrun.envs.normalize import ObsNormalizer
from rlrun.extras import missing

SUFFIXES = {"torchscript": ".policy.pt", "onnx": ".policy.onnx"}
"""File suffix per export format; the file is named `<checkpoint stem><suffix>`."""
CHECK_BATCH = 256
"""Observations on which the exported file is compared with the checkpoint's policy (count)."""
ATOL = 1e-5
"""Largest accepted absolute difference of continuous actions (action units)."""


class ExportError(RuntimeError):
    """The exported file does not act like the checkpoint's policy."""


class ExportedPolicy(nn.Module):
    """forward(raw obs) = clip_to_bounds(policy.act(normalize(obs), deterministic=True)).

    Args:
        policy: The acting network (`spec.make_policy`) with the checkpoint's weights, on CPU.
        obs_space: Observation space; float64 observations are cast to float32 when not normalised.
        action_space: Action space; a Box's bounds clip the actions.
        obs_normalizer: The checkpoint's frozen observation normaliser, or None.
    """

    def __init__(
        self,
        policy: nn.Module,
        obs_space: gym.Space,
        action_space: gym.Space,
        obs_normalizer: ObsNormalizer | None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.normalize = obs_normalizer is not None
        self.env_dtype = torch.from_numpy(np.zeros(0, obs_space.dtype)).dtype
        self.cast = obs_space.dtype == np.float64
        if obs_normalizer is not None:
            rms = obs_normalizer.rms
            self.register_buffer("obs_mean", torch.as_tensor(rms.mean, dtype=torch.float64))
            self.register_buffer("obs_std", torch.as_tensor(np.sqrt(rms.var + obs_normalizer.epsilon)))
            self.clip_obs = float(obs_normalizer.clip)
        self.clip_actions = isinstance(action_space, gym.spaces.Box)
        if self.clip_actions:
            self.register_buffer("action_low", torch.as_tensor(action_space.low))
            self.register_buffer("action_high", torch.as_tensor(action_space.high))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.to(self.env_dtype)
        if self.normalize:
            obs = ((obs.double() - self.obs_mean) / self.obs_std).float().clamp(-self.clip_obs, self.clip_obs)
        elif self.cast:
            obs = obs.float()
        actions = self.policy.act(obs, deterministic=True)
        if self.clip_actions:
            actions = torch.minimum(torch.maximum(actions, self.action_low), self.action_high)
        return actions


def reference_actions(
    policy: nn.Module, obs_normalizer: ObsNormalizer | None, action_space: gym.Space, obs: np.ndarray
) -> np.ndarray:
    """The env actions rlrun's evaluation takes for raw `obs`: numpy normaliser, act, clip."""
    if obs_normalizer is not None:
        obs = obs_normalizer(obs, update=False)
    elif obs.dtype == np.float64:
        obs = obs.astype(np.float32)
    with torch.inference_mode():
        actions = policy.act(torch.as_tensor(obs), deterministic=True).numpy()
    if isinstance(action_space, gym.spaces.Box):
        actions = np.minimum(np.maximum(actions, action_space.low), action_space.high)
    return actions


def sample_observations(obs_space: gym.Space, count: int, seed: int) -> np.ndarray:
    """`count` observations drawn from `obs_space` (seeded), stacked on a batch axis."""
    obs_space.seed(seed)
    return np.stack([np.asarray(obs_space.sample()) for _ in range(count)])


def export_policy(
    policy: nn.Module,
    obs_space: gym.Space,
    action_space: gym.Space,
    obs_normalizer: ObsNormalizer | None,
    fmt: str,
    checkpoint: Path,
    metadata: dict[str, str],
    seed: int = 0,
) -> tuple[Path, float]:
    """Write `<checkpoint stem>.policy.pt|.onnx` beside `checkpoint` and check it.

    Args:
        policy: The acting network with the checkpoint's weights (any device; copied to CPU).
        obs_space: Single-env observation space.
        action_space: Single-env action space.
        obs_normalizer: The checkpoint's observation normaliser (frozen), or None.
        fmt: "torchscript" or "onnx".
        checkpoint: The checkpoint file the policy comes from.
        metadata: Strings stored in the file (algo, env id, step, spaces).
        seed: Seed of the observations sampled for the check.

    Returns:
        The written file and the largest absolute difference between its actions and the
        checkpoint policy's on the check batch.

    Raises:
        ConfigError: an unknown format, or a package the format needs is missing.
        ExportError: the exported file acts differently from the checkpoint's policy.
    """
    if fmt not in SUFFIXES:
        raise ConfigError(f"eval.export={fmt!r} must be one of {', '.join(SUFFIXES)}")
    cpu_policy = copy.deepcopy(policy).cpu().eval()
    module = ExportedPolicy(cpu_policy, obs_space, action_space, obs_normalizer).eval()
    inputs = sample_observations(obs_space, CHECK_BATCH, seed).astype(np.float32)
    example = torch.as_tensor(inputs[:2])  # traced with batch 2, checked with CHECK_BATCH: a free batch axis
    path = checkpoint.with_name(checkpoint.stem + SUFFIXES[fmt])
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write = _torchscript if fmt == "torchscript" else _onnx
        actions = write(module, example, tmp, metadata, inputs)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    expected = reference_actions(cpu_policy, obs_normalizer, action_space, inputs.astype(obs_space.dtype))
    difference = float(np.abs(actions.astype(np.float64) - expected.astype(np.float64)).max())
    exact = not np.issubdtype(expected.dtype, np.floating)
    if actions.shape != expected.shape or difference > (0.0 if exact else ATOL):
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"the {fmt} export acts differently from {checkpoint.name}'s policy "
            f"(max |difference| {difference:.3g} on {len(inputs)} observations); nothing was written"
        )
    os.replace(tmp, path)
    return path, difference


def _torchscript(
    module: ExportedPolicy, example: torch.Tensor, path: Path, metadata: dict[str, str], obs: np.ndarray
) -> np.ndarray:
    """Trace (deterministic acting has no data-dependent control flow), save, reload and act."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is deprecated.*", category=DeprecationWarning)
        with torch.no_grad():
            traced = torch.jit.trace(module, example)
        torch.jit.save(traced, str(path), _extra_files={"rlrun.json": json.dumps(metadata)})
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return loaded(torch.as_tensor(obs)).numpy()


def _onnx(
    module: ExportedPolicy, example: torch.Tensor, path: Path, metadata: dict[str, str], obs: np.ndarray
) -> np.ndarray:
    """torch.export-based ONNX export with a free batch axis, checked by onnx and run by onnxruntime."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as error:
        raise missing(error.name, "eval.export=onnx") from None
    batch = torch.export.Dim("batch")
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)  # "torchvision is not installed": not needed here
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            program = torch.onnx.export(
                module, (example,), dynamo=True, input_names=["obs"], output_names=["actions"],
                dynamic_shapes=({0: batch},), verbose=False,
            )
    finally:
        registry_log.setLevel(level)
    model = program.model_proto
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"obs": obs})[0]
