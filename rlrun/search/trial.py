"""A search job's side of its trial: it reports its evaluations to the study's storage and asks
the pruner, from whatever process or machine the launcher ran it in.

The sweeper sets `hydra.sweeper.trial` (the trial number) and `hydra.sweeper.storage` (an
absolute storage string) in every job it launches; the job loads the study from the storage,
builds the same pruner from its own `hydra.sweeper` settings and reports through
`optuna.Trial(study, trial_id)`, Optuna's handle on a running trial.

Seeds and pruning: a trial's seeds train one after another, so seed k (the k-th of
`hparams_search.seeds`) reports its evaluation at env step s as step `k * total_timesteps + s`.
Every trial reports the same seeds at the same steps, so the pruner compares like with like (the
same seed at the same point of its training), and a trial can be stopped during its first seed
instead of after all of them. A pruned trial's value is its last report.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from omegaconf import DictConfig

from rlrun.search.study import make_pruner, open_storage

PRUNED_AT = "pruned_at_step"
"""User attribute a job sets on its trial when the pruner stops it (the reported step)."""


@dataclass
class TrialReporter:
    """Reports one seed run's evaluations to its trial."""

    trial: optuna.Trial
    offset: int
    """Added to the run's env step: seed index * total_timesteps."""

    def report(self, value: float, step: int, may_prune: bool) -> bool:
        """Report an evaluation return at env step `step`; True when the trial is to stop here
        (only with `may_prune`), which is then recorded on the trial for the sweeper."""
        reported = self.offset + step
        self.trial.report(value, reported)
        if may_prune and self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_AT, reported)
            return True
        return False


def trial_reporters(
    sweeper: DictConfig, budget: int, seeds: int, eval_every_steps: int
) -> list[TrialReporter] | None:
    """One reporter per seed run of this job, or None when the job is not a trial of rlrun's
    sweeper. `sweeper` is the job's `hydra.sweeper` node, `budget` its total_timesteps."""
    if sweeper.get("trial") is None:
        return None
    storage = open_storage(sweeper.storage)
    study = optuna.load_study(
        study_name=sweeper.study_name,
        storage=storage,
        pruner=make_pruner(sweeper, eval_every_steps),
    )
    study_id = storage.get_study_id_from_name(sweeper.study_name)
    trial = optuna.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, sweeper.trial)
    )
    return [TrialReporter(trial, index * budget) for index in range(seeds)]
