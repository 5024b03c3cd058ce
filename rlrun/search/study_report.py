"""The study section of `rlrun-report <sweep dir>`: trials by state, the best trial, parameter
importances and the optimisation history, for a sweep dir of rlrun's Optuna sweeper (it holds
`optimization_results.yaml`, which names the study and its storage)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from rlrun.search import RESULTS_FILE

HISTORY_PNG = "optimization_history.png"
INTERMEDIATE_PNG = "intermediate_values.png"


@dataclass
class StudySection:
    markdown: str
    """The section of report.md."""
    headline: str
    """One line for the console."""


def _storage_of(sweep_dir: Path, url: str) -> str:
    """The study's storage: as recorded, or its file in `sweep_dir` when the dir was moved."""
    from rlrun.search.study import JOURNAL, storage_file

    file = storage_file(url)
    if file is None or file.is_file() or not (sweep_dir / file.name).is_file():
        return url
    moved = (sweep_dir / file.name).absolute()
    return f"{JOURNAL}{moved}" if url.startswith(JOURNAL) else f"sqlite:///{moved}"


def _importances(study) -> list[str]:
    """Markdown lines of the parameter importances (Optuna's fANOVA), or why there are none."""
    import optuna

    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < 2:
        return [f"(parameter importances need 2 completed trials; the study has {len(completed)})"]
    try:
        with warnings.catch_warnings():  # e.g. that all importances are equal: the table shows it
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:
        return [f"(parameter importances could not be computed: {error})"]
    if not importances:
        return ["(no parameter varies across the completed trials)"]
    return [
        "| parameter | importance |",
        "|---|---:|",
        *(f"| `{name}` | {value:.3f} |" for name, value in importances.items()),
    ]


def _save_plot(plot, study, path: Path) -> None:
    import matplotlib.pyplot as plt
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = plot(study)
    axes.figure.tight_layout()
    axes.figure.savefig(path, dpi=120)
    plt.close(axes.figure)


def study_section(sweep_dir: Path, out: Path) -> StudySection:
    """The study of `sweep_dir` as markdown, with its plots written to `out`.

    Raises:
        ConfigError: Optuna is not installed.
    """
    from rlrun.extras import require

    require("optuna", f"the study section of {sweep_dir}")
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    from rlrun.search.study import JOURNAL, open_storage

    results = OmegaConf.load(sweep_dir / RESULTS_FILE)
    storage = _storage_of(sweep_dir, str(results.storage))
    study = optuna.load_study(study_name=str(results.study_name), storage=open_storage(storage))
    trials = study.get_trials(deepcopy=False)
    states = {
        state.name.lower(): sum(t.state == state for t in trials)
        for state in optuna.trial.TrialState
    }
    counts = ", ".join(f"{n} {state}" for state, n in states.items() if n)
    dashboard = storage.removeprefix(JOURNAL)  # it takes a journal's path
    summary = (
        f"Storage `{storage}`: {len(trials)} trials ({counts}). Browse it with "
        f"`optuna-dashboard {dashboard}`."
    )
    lines = [
        f"## Study `{study.study_name}`",
        "",
        summary,
        "",
        "| state | trials |",
        "|---|---:|",
        *(f"| {state} | {n} |" for state, n in states.items() if n),
        "",
    ]
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        headline = (
            f"study {study.study_name}: {len(trials)} trials ({counts}); "
            f"best value {best.value:.2f} "
            f"(trial {best.number})"
        )
        lines += [
            f"Best trial: {best.number}, value {best.value:.4g}.",
            "",
            "| parameter | value |",
            "|---|---|",
            *(f"| `{name}` | {value} |" for name, value in best.params.items()),
            "",
        ]
    else:
        headline = f"study {study.study_name}: {len(trials)} trials ({counts}); none completed yet"
        lines += ["(no completed trial yet)", ""]
    lines += ["### Parameter importances", "", *_importances(study), ""]
    if trials:
        _save_plot(optuna_plots.plot_optimization_history, study, out / HISTORY_PNG)
        lines += ["### Optimisation history", "", f"![optimisation history]({HISTORY_PNG})", ""]
    if any(t.intermediate_values for t in trials):
        _save_plot(optuna_plots.plot_intermediate_values, study, out / INTERMEDIATE_PNG)
        lines += [
            "### Evaluations reported to the pruner",
            "",
            "x: seed index * total_timesteps + env step (seeds train one after another).",
            "",
            f"![intermediate values]({INTERMEDIATE_PNG})",
            "",
        ]
    return StudySection("\n".join(lines), headline)
