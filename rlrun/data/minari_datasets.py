"""Datasets in Minari's local storage (`minari.load_dataset(<id>)` reads them).

`rlrun-eval <checkpoint> eval.dataset=<namespace/name-v0>` records the evaluated episodes with
`minari.create_dataset_from_buffers`, under `MINARI_DATASETS_PATH` (default
`~/.minari/datasets`): observations as the env returned them (before rlrun's observation
normalisation), the actions it executed, rewards, terminations, truncations, the storable
infos (`rlrun.envs.recording`), the seed of each seeded reset, the observation and action
spaces and the env spec. Minari comes with the `minari` extra and is imported only here.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import gymnasium as gym

from rlrun.config import ConfigError
from rlrun.envs.recording import RecordedEpisode
from rlrun.extras import require

EXAMPLE_ID = "rlrun/cartpole-expert-v0"
"""A dataset id of Minari's form, shown when an id is refused."""


def require_minari(what: str) -> None:
    """Refuse `what` in one line unless Minari and its HDF5 storage (h5py) are installed."""
    require("minari", what)
    require("h5py", what)


def absolute_storage_root() -> None:
    """Make a relative MINARI_DATASETS_PATH absolute (Minari 0.5 fails to write a dataset under a
    relative one: it joins each file's path to the dataset's dir twice to sum their sizes)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    if root:
        os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(root)


def dataset_path(dataset_id: str) -> Path:
    """Where Minari keeps the dataset `dataset_id` (under MINARI_DATASETS_PATH)."""
    from minari.storage import get_dataset_path

    return Path(get_dataset_path(dataset_id))


def check_new_dataset(dataset_id: str, overwrite: bool) -> Path:
    """Refuse an id that is not Minari's `namespace/name-v<N>`, or that names an existing
    dataset unless `overwrite`; returns the dataset's dir."""
    require_minari(f"eval.dataset={dataset_id}")
    absolute_storage_root()
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        namespace = parse_dataset_id(dataset_id)[0]
    except (ValueError, TypeError):  # malformed, or without its -v<N> (Minari fails on int(None))
        namespace = None
    if namespace is None:
        raise ConfigError(
            f"eval.dataset={dataset_id!r} is not a Minari dataset id: name it "
            f"namespace/name-v<version>, e.g. eval.dataset={EXAMPLE_ID}"
        )
    path = dataset_path(dataset_id)
    if path.exists() and not overwrite:
        raise ConfigError(
            f"eval.dataset={dataset_id} exists already ({path}); pick another name or version, "
            "or add eval.dataset_overwrite=true to replace it"
        )
    return path


def write_dataset(
    dataset_id: str,
    episodes: list[RecordedEpisode],
    env_spec: gym.envs.registration.EnvSpec | None,
    observation_space: gym.Space,
    action_space: gym.Space,
    overwrite: bool,
    algorithm_name: str,
    description: str,
) -> Path:
    """Write `episodes` as the Minari dataset `dataset_id`; returns its dir.

    A dataset replaced under `overwrite` is moved aside first and put back if writing fails.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    path = check_new_dataset(dataset_id, overwrite)
    replaced = path.with_name(f".{path.name}.replaced")
    if path.exists():
        shutil.rmtree(replaced, ignore_errors=True)
        path.rename(replaced)
    buffers = [
        EpisodeBuffer(
            seed=episode.seed,
            observations=episode.observations,
            actions=episode.actions,
            rewards=episode.rewards,
            terminations=episode.terminations,
            truncations=episode.truncations,
            infos=episode.infos,
        )
        for episode in episodes
    ]
    try:
        with warnings.catch_warnings():  # Minari asks for authors, e-mail and a code link
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")
            minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env_spec,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=algorithm_name,
                description=description,
                jpeg_encoding=False,  # image observations stored as they are (lossless)
            )
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        if replaced.exists():
            replaced.rename(path)
        raise
    shutil.rmtree(replaced, ignore_errors=True)
    return path
