"""Expert policies and demonstration datasets for imitation learning (BC, DAgger; book ch. 13).

An expert (`Expert`) is a policy that acts deterministically on raw observations normalised
with the expert's own statistics; whoever loads it from a checkpoint hands it in (the imitation
algorithms, through the run's `Launch.load_policy`). Demonstrations (`Demos`) hold raw
observations, so a learner can normalise them its own way.

On disk a dataset is written in the Minari format when the `minari` extra (Minari with h5py)
is installed, else as one `.npz` file (`numpy.load(path, allow_pickle=False)` reads it):

| array | shape, dtype | meaning |
|---|---|---|
| obs | [N, *obs_shape] | raw observation s_t of each transition, episodes one after the other |
| actions | [N, *action_shape] int64 or float32 | expert action a_t (Box actions clipped to the bounds) |
| rewards | [N] float32 | reward r_t the env returned |
| terminations | [N] bool | s_{t+1} is terminal |
| truncations | [N] bool | the episode was cut (time limit) after a_t |
| episode_starts | [N] bool | s_t is the first observation of an episode |
| final_obs | [E, *obs_shape] | last observation s_T of each of the E episodes |
| env_id | [] str | Gymnasium id of the env the data came from |

A Minari dataset stores the same episodes (observations s_0..s_T, T+1 rows per episode); one
read from Minari's local storage by id (`rlrun-eval ... eval.dataset=<id>` writes them,
`rlrun.data.minari_datasets`) must have the env's observation and action spaces.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlrun.config import ConfigError
from rlrun.data.minari_datasets import require_minari
from rlrun.envs.factory import Step, VecEnv
from rlrun.envs.normalize import ObsNormalizer

NPZ_NAME = "demos.npz"
"""File name of a dataset written as .npz in the run dir."""
MINARI_NAME = "demos"
"""Directory name of a dataset written in Minari format in the run dir (data in `demos/data/`)."""


@dataclass
class Demos:
    """Transitions of whole episodes, episode after episode (see the module docstring's table)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_starts: np.ndarray
    final_obs: np.ndarray

    @classmethod
    def empty(cls, obs_space: gym.Space, action_space: gym.Space) -> Demos:
        discrete = isinstance(action_space, gym.spaces.Discrete)
        obs_dtype = np.float32 if obs_space.dtype == np.float64 else obs_space.dtype
        return cls(
            obs=np.zeros((0, *obs_space.shape), obs_dtype),
            actions=np.zeros((0, *action_space.shape), np.int64 if discrete else np.float32),
            rewards=np.zeros(0, np.float32),
            terminations=np.zeros(0, bool),
            truncations=np.zeros(0, bool),
            episode_starts=np.zeros(0, bool),
            final_obs=np.zeros((0, *obs_space.shape), obs_dtype),
        )

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def num_episodes(self) -> int:
        return len(self.final_obs)

    def episode_returns(self) -> np.ndarray:
        """Sum of rewards of each episode."""
        episode = np.cumsum(self.episode_starts) - 1
        return np.bincount(episode, weights=self.rewards, minlength=self.num_episodes)

    def extend(self, other: Demos) -> None:
        """Append `other`'s episodes (DAgger's dataset aggregation)."""
        for field in fields(self):
            setattr(self, field.name, np.concatenate([getattr(self, field.name), getattr(other, field.name)]))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {field.name: torch.from_numpy(np.ascontiguousarray(getattr(self, field.name))) for field in fields(self)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for field in fields(self):
            setattr(self, field.name, state[field.name].numpy())


class Expert:
    """A policy acting deterministically on raw observations (an imitation expert).

    Observations are normalised with the expert's own training statistics (`normalizer`, a
    frozen `ObsNormalizer`, or None) before `policy` sees them; Box actions are clipped to the
    env bounds.
    """

    def __init__(self, policy: nn.Module, normalizer: ObsNormalizer | None, action_space: gym.Space,
                 device: torch.device) -> None:
        self.policy = policy
        self.normalizer = normalizer
        self.device = device
        self.bounds = None
        if isinstance(action_space, gym.spaces.Box):
            self.bounds = (torch.as_tensor(action_space.low, device=device),
                           torch.as_tensor(action_space.high, device=device))

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The expert's actions for a batch of raw observations."""
        if self.normalizer is not None:
            obs = torch.as_tensor(self.normalizer(obs.cpu().numpy(), update=False), device=self.device)
        actions = self.policy.act(obs, deterministic=True)
        if self.bounds is not None:
            actions = torch.clamp(actions, *self.bounds)
        return actions


@torch.no_grad()
def collect_demos(
    act: Any,
    label: Any,
    envs: VecEnv,
    episodes: int,
    on_step: Callable[[Step], None],
    device: torch.device,
    seed: int | None = None,
) -> Demos:
    """Run `episodes` whole episodes (spread over the envs) and record them.

    Args:
        act: obs -> actions that are executed (the expert, or DAgger's β-mixture).
        label: obs -> actions stored as labels (the expert), or None to store the executed ones.
        envs: Vector env returning raw observations.
        episodes: Episodes to record (count); each env runs a fixed quota of them, so short
            episodes are not over-represented, and steps past its quota are dropped.
        on_step: Receives every env step (the run's `record_episodes`, for the `rollout/` metrics).
        device: Where `act` and `label` take their observations.
        seed: Seed of the reset that starts the collection.
    """
    num_envs = envs.num_envs
    quotas = np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])
    done = np.zeros(num_envs, np.int64)
    obs = torch.as_tensor(envs.reset(seed=seed), device=device)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in ("obs", "actions", "rewards", "terminations",
                                                                 "truncations", "active")}
    final_obs: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
    while (done < quotas).any():
        active = done < quotas
        actions = act(obs)
        labels = actions if label is None else label(obs)
        step = envs.step(actions.cpu().numpy())
        on_step(step)
        for name, value in (("obs", obs.cpu().numpy()), ("actions", labels.cpu().numpy()),
                            ("rewards", step.rewards), ("terminations", step.terminations),
                            ("truncations", step.truncations), ("active", active)):
            rows[name].append(value)
        for i in np.flatnonzero((step.terminations | step.truncations) & active):
            final_obs[i].append(step.final_obs[i])
            done[i] += 1
        obs = torch.as_tensor(step.obs, device=device)
    stacked = {name: np.stack(values, 1) for name, values in rows.items()}  # [N, T, ...], env-major
    keep = stacked.pop("active")
    ends = stacked["terminations"] | stacked["truncations"]
    starts = np.concatenate([np.ones((num_envs, 1), bool), ends[:, :-1]], 1)
    obs_dtype = np.float32 if stacked["obs"].dtype == np.float64 else stacked["obs"].dtype
    return Demos(
        obs=stacked["obs"][keep].astype(obs_dtype),
        actions=stacked["actions"][keep],
        rewards=stacked["rewards"][keep].astype(np.float32),
        terminations=stacked["terminations"][keep],
        truncations=stacked["truncations"][keep],
        episode_starts=starts[keep],
        final_obs=np.stack([o for per_env in final_obs for o in per_env]).astype(obs_dtype),
    )


def minari_available() -> bool:
    """Whether datasets can be written and read in the Minari format here (the minari extra)."""
    return importlib.util.find_spec("minari") is not None and importlib.util.find_spec("h5py") is not None


def save_demos(demos: Demos, run_dir: Path, env_id: str, obs_space: gym.Space, action_space: gym.Space) -> Path:
    """Write `demos` into `run_dir` (Minari when available, else .npz); returns its path."""
    if minari_available():
        return _save_minari(demos, run_dir / MINARI_NAME, env_id, obs_space, action_space)
    path = run_dir / NPZ_NAME
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **{field.name: getattr(demos, field.name) for field in fields(demos)},
                        env_id=np.array(env_id))
    tmp.replace(path)
    return path


def load_demos(source: str, env_id: str, obs_space: gym.Space, action_space: gym.Space) -> Demos:
    """Read a dataset: a .npz file, a Minari dataset dir, or the id of a dataset in Minari's
    local storage (MINARI_DATASETS_PATH).

    Raises:
        ConfigError: missing or unreadable dataset, one whose spaces (Minari) or shapes (.npz)
            are not the env's, or one recorded on another env.
    """
    path = Path(source).expanduser()
    if path.suffix == ".npz":
        if not path.is_file():
            raise ConfigError(f"algo.dataset={source}: no such file; pass a dataset written by algo=bc")
        with np.load(path, allow_pickle=False) as data:
            missing = ({field.name for field in fields(Demos)} | {"env_id"}) - set(data.files)
            if missing:
                raise ConfigError(f"algo.dataset={source} lacks {sorted(missing)}; it is not an rlrun dataset")
            demos = Demos(**{field.name: data[field.name] for field in fields(Demos)})
            recorded_env = str(data["env_id"])
    else:
        demos, recorded_env = _load_minari(source, path, env_id, obs_space, action_space)
    for name in ("obs", "final_obs", "actions"):
        if getattr(demos, name).dtype == np.float64:
            setattr(demos, name, getattr(demos, name).astype(np.float32))
    if recorded_env != env_id:
        raise ConfigError(f"algo.dataset={source} was recorded on {recorded_env}, not {env_id}; use env={recorded_env}")
    if demos.obs.shape[1:] != obs_space.shape or demos.actions.shape[1:] != action_space.shape:
        raise ConfigError(
            f"algo.dataset={source} holds observations {demos.obs.shape[1:]} and actions "
            f"{demos.actions.shape[1:]}, the env {obs_space.shape} and {action_space.shape}"
        )
    return demos


def _same_space(recorded: gym.Space, env: gym.Space) -> bool:
    """Whether a dataset's space is the env's (Box: shape and bounds, whatever the float dtype)."""
    if isinstance(recorded, gym.spaces.Box) and isinstance(env, gym.spaces.Box):
        return (recorded.shape == env.shape and np.allclose(recorded.low, env.low)
                and np.allclose(recorded.high, env.high))
    return recorded == env


def _save_minari(demos: Demos, directory: Path, env_id: str, obs_space: gym.Space, action_space: gym.Space) -> Path:
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    data_path = tmp / "data"
    data_path.mkdir(parents=True)
    storage = MinariStorage.new(data_path, observation_space=obs_space, action_space=action_space,
                                env_spec=gym.spec(env_id), data_format="hdf5")
    storage.update_metadata({
        "dataset_id": f"rlrun/{env_id.split('-v')[0].lower()}/expert-v0",
        "algorithm_name": "rlrun expert checkpoint",
        "minari_version": minari.__version__,
    })
    bounds = np.flatnonzero(demos.episode_starts).tolist() + [len(demos)]
    storage.update_episodes(
        EpisodeBuffer(
            observations=np.concatenate([demos.obs[start:end], demos.final_obs[k][None]]),
            actions=demos.actions[start:end],
            rewards=demos.rewards[start:end],
            terminations=demos.terminations[start:end],
            truncations=demos.truncations[start:end],
            infos={},
        )
        for k, (start, end) in enumerate(itertools.pairwise(bounds))
    )
    shutil.rmtree(directory, ignore_errors=True)  # a re-run of an interrupted run records the same episodes
    tmp.rename(directory)
    return directory


def _load_minari(source: str, path: Path, env_id: str, obs_space: gym.Space,
                 action_space: gym.Space) -> tuple[Demos, str]:
    """A Minari dataset from its dir (holding data/ or metadata.json) or a local dataset id,
    refusing one whose spaces are not the env's."""
    require_minari(f"algo.dataset={source} (not a .npz file: a Minari dataset id or dir)")
    import minari

    data_path = path / "data" if (path / "data" / "metadata.json").is_file() else path
    try:
        if (data_path / "metadata.json").is_file():
            dataset = minari.MinariDataset(data_path)
        else:
            dataset = minari.load_dataset(source, download=False)
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        raise ConfigError(
            f"algo.dataset={source}: no readable dataset there ({str(error).splitlines()[0]}); pass a .npz "
            "file, a Minari dataset dir or the id of a local Minari dataset"
        ) from None
    env_spec = dataset.spec.env_spec
    if env_spec is None:
        metadata = json.loads((Path(dataset.spec.data_path) / "metadata.json").read_text())
        raise ConfigError(f"algo.dataset={source} names no env ({metadata.get('dataset_id')}); cannot check it")
    recorded_obs, recorded_actions = dataset.observation_space, dataset.action_space
    if not (_same_space(recorded_obs, obs_space) and _same_space(recorded_actions, action_space)):
        raise ConfigError(
            f"algo.dataset={source} holds observations {recorded_obs} and actions "
            f"{recorded_actions} (recorded on {env_spec.id}), env {env_id} has {obs_space} and "
            f"{action_space}; use a dataset recorded on {env_id} with the same env settings"
        )
    parts: dict[str, list[np.ndarray]] = {field.name: [] for field in fields(Demos)}
    for episode in dataset.iterate_episodes():
        steps = len(episode.actions)
        starts = np.zeros(steps, bool)
        starts[0] = True
        parts["obs"].append(np.asarray(episode.observations[:steps]))
        parts["final_obs"].append(np.asarray(episode.observations[steps:steps + 1]))
        parts["actions"].append(np.asarray(episode.actions))
        parts["rewards"].append(np.asarray(episode.rewards, np.float32))
        parts["terminations"].append(np.asarray(episode.terminations, bool))
        parts["truncations"].append(np.asarray(episode.truncations, bool))
        parts["episode_starts"].append(starts)
    return Demos(**{name: np.concatenate(values) for name, values in parts.items()}), env_spec.id
