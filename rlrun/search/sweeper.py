"""The search loop of `hydra/sweeper=rlrun_optuna`: ask trials, launch them, tell their results.

Trials go to Hydra's launcher `n_jobs` at a time, each as overrides (its parameters, the fixed
values, and `hydra.sweeper.trial` / `hydra.sweeper.storage` so the job can report to its trial).
A trial whose overrides equal those of a finished trial of the study is answered from the study
(its value, or pruned at its last report) without launching. The study is created in, or loaded
from, the storage: re-running the command with the same `hydra.sweep.dir` continues it.
`<sweep dir>/optimization_results.yaml` gets the best trial after every batch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from rlrun.search import RESULTS_FILE
from rlrun.search.space import SearchSpace, parse_space
from rlrun.search.study import (
    check_settings,
    make_pruner,
    make_sampler,
    open_storage,
    storage_file,
    storage_url,
)
from rlrun.search.trial import PRUNED_AT

log = logging.getLogger(__name__)

OVERRIDES = "overrides"
"""User attribute of every trial: its override lines (what makes two trials the same)."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _quoted(value: str) -> str:
    """`value` as a quoted Hydra override value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class OptunaSearch:
    """One search command's study, sampler and launcher."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.failures = 0
        self.launched = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.url = storage_url(self.settings["storage"], self.sweep_dir)

    def open_study(self) -> optuna.Study:
        """The study in the storage, created when it is not there yet."""
        logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's schema migrations
        file = storage_file(self.url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        return optuna.create_study(
            study_name=settings["study_name"],
            storage=open_storage(self.url),
            load_if_exists=True,
            sampler=make_sampler(settings["sampler"], settings["sampler_seed"]),
            pruner=make_pruner(settings, int(self.config.eval.every_steps)),
            direction=settings["direction"],
        )

    def sweep(self, arguments: list[str]) -> None:
        check_settings(self.settings)
        params = self.settings["params"]
        space = parse_space(None if params is None else dict(params), arguments)
        study = self.open_study()
        log.info(
            f"Study {study.study_name} in {self.url}: {len(study.trials)} trials so far; "
            f"{self.settings['n_trials']} more, {self.settings['n_jobs']} at a time"
        )
        left = self.settings["n_trials"]
        while left > 0:
            batch = min(left, self.settings["n_jobs"])
            self._run_batch(study, space, batch)
            left -= batch
            self._write_results(study)

    def _run_batch(self, study: optuna.Study, space: SearchSpace, size: int) -> None:
        recorded = {
            tuple(t.user_attrs[OVERRIDES]): t
            for t in study.get_trials(deepcopy=False, states=FINISHED)
            if OVERRIDES in t.user_attrs
        }
        launched: dict[tuple[str, ...], optuna.Trial] = {}
        repeats: list[tuple[optuna.Trial, tuple[str, ...]]] = []
        for _ in range(size):
            trial = study.ask(space.distributions)
            overrides = tuple(space.overrides(trial.params))
            trial.set_user_attr(OVERRIDES, list(overrides))
            if overrides in recorded:
                self._answer(study, trial, recorded[overrides])
            elif overrides in launched:
                repeats.append((trial, overrides))
            else:
                launched[overrides] = trial
        jobs = [
            [
                *overrides,
                f"hydra.sweeper.trial={trial.number}",
                f"hydra.sweeper.storage={_quoted(self.url)}",
                f"hydra.sweeper.study_name={_quoted(study.study_name)}",
            ]
            for overrides, trial in launched.items()
        ]
        returns = self.launcher.launch(jobs, initial_job_idx=self.launched) if jobs else []
        self.launched += len(jobs)
        # get_trials re-reads running trials from the storage, where their jobs wrote
        attrs = {
            t.number: t.user_attrs
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
        for trial, result in zip(launched.values(), returns):
            self._tell(study, trial, result, pruned=PRUNED_AT in attrs.get(trial.number, {}))
        for trial, overrides in repeats:
            self._answer(study, trial, study.trials[launched[overrides].number])

    def _answer(self, study: optuna.Study, trial: optuna.Trial, previous: FrozenTrial) -> None:
        """Finish `trial` as `previous` finished (same overrides), without training."""
        trial.set_user_attr("same_as", previous.number)
        if previous.state == TrialState.COMPLETE:
            study.tell(trial, previous.value)
        elif previous.state == TrialState.PRUNED and previous.last_step is not None:
            trial.report(previous.intermediate_values[previous.last_step], previous.last_step)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, state=previous.state)
        log.info(
            f"Trial {trial.number}: the parameters of trial {previous.number}; "
            "answered from the study "
            f"({previous.state.name.lower()}, value {previous.value}) without training"
        )

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: Any, pruned: bool) -> None:
        """Record a launched trial's job result: complete with its value, pruned (its job said
        so), or failed."""
        if result.status == JobStatus.COMPLETED:
            if pruned:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, float(result.return_value))
            return
        study.tell(trial, state=TrialState.FAIL)
        self.failures += 1
        try:
            result.return_value  # noqa: B018 (raises the job's error)
        except Exception as raised:  # noqa: BLE001 (any error of a job fails its trial)
            error = raised
        log.warning(f"Trial {trial.number} failed: {error!r}")
        if self.failures / self.launched > self.settings["max_failure_rate"]:
            raise error

    def _write_results(self, study: optuna.Study) -> None:
        """`<sweep dir>/optimization_results.yaml`: the best trial (as Hydra's Optuna sweeper
        writes it), the study's storage and its trials by state."""
        states = [trial.state.name.lower() for trial in study.get_trials(deepcopy=False)]
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": self.url,
            "trials": {state: states.count(state) for state in sorted(set(states))},
        }
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if completed:
            best = study.best_trial
            results.update(
                best_trial=best.number,
                best_params=best.params,
                best_value=best.value,
                best_overrides=best.user_attrs.get(OVERRIDES, []),
            )
            log.info(f"Best trial so far: {best.number}, value {best.value}")
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / RESULTS_FILE)
