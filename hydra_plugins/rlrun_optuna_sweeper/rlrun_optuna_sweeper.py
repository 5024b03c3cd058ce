"""The `hydra/sweeper: rlrun_optuna` config and the Sweeper class Hydra instantiates from it.

Hydra imports this module whenever it scans its plugins (every `rlrun` command), so it imports
neither Optuna nor torch: the search itself is `rlrun.search.sweeper.OptunaSearch`.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

NAME = "rlrun_optuna"
"""The `hydra/sweeper` choice."""


@dataclass
class RlrunOptunaSweeperConf:
    # No `from __future__ import annotations` here: Hydra runs this module before it is in
    # sys.modules, where dataclasses cannot resolve string annotations.
    _target_: str = "hydra_plugins.rlrun_optuna_sweeper.rlrun_optuna_sweeper.RlrunOptunaSweeper"
    direction: str = "maximize"
    """maximize | minimize the objective (a job's return: the seed-mean final eval return)."""
    study_name: str = "${algo.name}"
    """Name of the study in the storage (default: the algorithm's name)."""
    storage: str | None = None
    """null: sqlite:///<sweep dir>/optuna.db; journal: <sweep dir>/optuna.journal (an Optuna
    JournalFileBackend, for Slurm and shared file systems); journal:<path>; or a database URL."""
    n_trials: int = 20
    """Trials run by this command (count); re-running it on the same storage adds as many."""
    n_jobs: int = 1
    """Trials handed to the launcher at once (count; 1 lets the sampler learn from each)."""
    sampler: str = "tpe"
    """tpe | cmaes | gp | random: Optuna's TPESampler, CmaEsSampler, GPSampler, RandomSampler."""
    sampler_seed: int | None = None
    """Seed of the sampler (null: a fresh one each command); set it for a repeatable search."""
    pruner: str = "median"
    """none | median | hyperband: stop a trial whose evaluations fall behind (Optuna's
    NopPruner, MedianPruner, HyperbandPruner); trials report at every eval.every_steps."""
    pruner_startup_trials: int = 5
    """median: finished trials before any trial is pruned (count)."""
    pruner_warmup_steps: int = 0
    """median: env steps of a trial's reports before it may be pruned; hyperband: its smallest
    budget (env steps; 0: eval.every_steps)."""
    max_failure_rate: float = 0.0
    """Fraction of failed trials (0 to 1) the search goes on after; above it, it stops."""
    params: dict[str, str] | None = field(default_factory=dict)
    """The search space: key -> choice(...), interval(a, b), tag(log, interval(a, b)),
    tag(int, interval(a, b)), range(a, b) (rlrun.search.space)."""
    trial: int | None = None
    """Set by the sweeper in each job it launches: the trial number the job reports to."""


ConfigStore.instance().store(
    group="hydra/sweeper", name=NAME, node=RlrunOptunaSweeperConf, provider="rlrun"
)


class RlrunOptunaSweeper(Sweeper):
    """Hydra's entry to `rlrun.search.sweeper.OptunaSearch` (imported once a sweep starts)."""

    def __init__(self, **settings: Any) -> None:
        from rlrun.search.sweeper import OptunaSearch

        self.search = OptunaSearch(settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.search.sweep(arguments)
