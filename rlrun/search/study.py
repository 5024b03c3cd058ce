"""Where a study lives and how it searches: storages, samplers, pruners, and the settings check.

A storage is named by one string that every job can open on its own, in any process or on any
machine that sees the same files or database: `sqlite:///<path>` (the default, in the sweep
dir), `journal:<path>` (an Optuna JournalFileBackend file: appends under a file lock, the choice
for Slurm clusters and shared file systems, where SQLite's locking is unreliable) or any
database URL SQLAlchemy takes (`postgresql://...`, `mysql://...`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from rlrun.config import ConfigError

SAMPLERS = ("tpe", "cmaes", "gp", "random")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
JOURNAL = "journal:"
"""Prefix of a journal-file storage (`journal:<path>`)."""
SQLITE_BUSY_TIMEOUT_S = 60.0
"""How long a job waits for another job's SQLite write to end (seconds)."""


def storage_url(spec: str | None, sweep_dir: Path) -> str:
    """The storage string of `hydra.sweeper.storage=spec` (null, `journal`, `journal:<path>`, a
    URL), with paths made absolute so that jobs started elsewhere find the same file."""
    sweep_dir = Path(sweep_dir).expanduser().absolute()
    if spec is None or spec == "sqlite":
        return f"sqlite:///{sweep_dir / 'optuna.db'}"
    if spec == "journal":
        return f"{JOURNAL}{sweep_dir / 'optuna.journal'}"
    if spec.startswith(JOURNAL):
        return f"{JOURNAL}{Path(spec[len(JOURNAL) :]).expanduser().absolute()}"
    return spec


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage named by `url` (see `storage_url`)."""
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len(JOURNAL) :]))
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if url.startswith("sqlite") else {}
    )
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def storage_file(url: str) -> Path | None:
    """The file of a sqlite or journal storage; None for a database server."""
    if url.startswith(JOURNAL):
        return Path(url[len(JOURNAL) :])
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    return None


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's sampler `name` (one of SAMPLERS) seeded with `seed`."""
    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler,
    }
    return samplers[name](seed=seed)


def make_pruner(
    settings: DictConfig | dict[str, Any], eval_every_steps: int
) -> optuna.pruners.BasePruner:
    """The pruner of `hydra.sweeper` `settings`; hyperband's smallest budget is
    `pruner_warmup_steps` env steps, or the first evaluation (`eval_every_steps`) when 0."""
    if settings["pruner"] == "none":
        return optuna.pruners.NopPruner()
    if settings["pruner"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings["pruner_startup_trials"],
            n_warmup_steps=settings["pruner_warmup_steps"],
        )
    first = settings["pruner_warmup_steps"] or eval_every_steps
    return optuna.pruners.HyperbandPruner(min_resource=max(1, first))


def check_settings(settings: DictConfig | dict[str, Any]) -> None:
    """Raise ConfigError naming the fix for a `hydra.sweeper` value rlrun's sweeper cannot use."""
    choices = {"sampler": SAMPLERS, "pruner": PRUNERS, "direction": DIRECTIONS}
    for key, allowed in choices.items():
        if settings[key] not in allowed:
            raise ConfigError(
                f"hydra.sweeper.{key}={settings[key]} is not one of {' | '.join(allowed)}; "
                f"e.g. hydra.sweeper.{key}={allowed[0] if key != 'pruner' else 'median'}"
            )
    minimum = {"n_trials": 1, "n_jobs": 1, "pruner_startup_trials": 0, "pruner_warmup_steps": 0}
    for key, least in minimum.items():
        if settings[key] < least:
            raise ConfigError(f"hydra.sweeper.{key}={settings[key]} must be >= {least}")
    if not 0.0 <= settings["max_failure_rate"] <= 1.0:
        raise ConfigError(
            f"hydra.sweeper.max_failure_rate={settings['max_failure_rate']} must be in [0, 1]"
        )
    spec = settings["storage"]
    if spec and not (spec in ("sqlite", "journal") or spec.startswith(JOURNAL) or "://" in spec):
        raise ConfigError(
            f"hydra.sweeper.storage={spec} is not a storage; use journal, "
            "journal:<file>, or a database URL such as sqlite:///<file>"
        )
