"""How rlrun's runs compare with a published figure (`rlrun.results.references`).

`compare` computes rlrun's figure by the same measure from the runs of a report group, at the
same step, and says what still differs (env version, run length, seeds, deterministic against
stochastic evaluation, ...) or why there is no figure to compare (an rllab task, a step the runs
did not reach, Atari training returns per life against full games).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rlrun.results.references import Reference, split_env_id
from rlrun.results.statistics import RESAMPLES, summary

if TYPE_CHECKING:
    from rlrun.results.runs import RunRecord

STEP_TOLERANCE = 0.01
"""Relative slack around a figure's step (fraction of it): a run that ends this close to the step
reached it, and a value logged this close after it is read at it (vectorised envs end a few steps
off a round budget)."""
CLOSE = 0.05
"""Relative difference (fraction) below which two budgets or steps count as the same."""


class Figure(NamedTuple):
    """rlrun's figure by a published figure's measure."""

    text: str
    """As shown: what it is and its value (`IQM [95% CI] 312.0 [290.1, 330.2]`)."""
    point: float
    """The value set against the published mean."""


class Unmeasured(Exception):
    """The runs give no figure by this measure; the message says why."""


@dataclass(frozen=True)
class Comparison:
    """A published figure beside rlrun's figure by the same measure."""

    reference: Reference
    """The published figure."""
    ours: Figure | None
    """rlrun's figure; None when the runs give none (`differs` says why)."""
    differs: list[str]
    """What still differs between the two, or why rlrun has no figure."""

    @property
    def ratio(self) -> str:
        """`ratio` of the two figures; n/a without rlrun's."""
        return "n/a" if self.ours is None else ratio(self.ours.point, self.reference.mean)


def compare(
    reference: Reference, runs: Sequence[RunRecord], resamples: int = RESAMPLES, seed: int = 0
) -> Comparison:
    """rlrun's figure by `reference`'s measure from `runs` (the seeds of one setting on one env),
    read at the figure's step, and what still differs; no figure where the task or the step
    cannot be matched."""
    try:
        if reference.env_version == "rllab":
            raise Unmeasured("an rllab task, not a Gymnasium env")
        if reference.steps is None:
            raise Unmeasured("the figure's step is not stated")
        short = [run.steps for run in runs if run.steps < reference.steps * (1 - STEP_TOLERANCE)]
        if short:
            raise Unmeasured(f"{len(short)} of {len(runs)} runs end before step "
                             f"{reference.steps:,} (at {min(short):,})")
        kind = reference.measure_kind.removesuffix("_deterministic").removesuffix("_stochastic")
        at = reference.steps * (1 + STEP_TOLERANCE)
        figure, notes = _MEASURES[kind](reference, runs, at, resamples, seed)
    except Unmeasured as reason:
        return Comparison(reference, None, [f"{reason}: no ratio"])
    return Comparison(reference, figure, [*notes, *_setting_differences(reference, runs)])


def _span(values: Iterable[int]) -> str:
    """`1,000,000`, or `500,000-1,000,000` for several values."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _read(steps: np.ndarray, values: np.ndarray, at: float, what: str) -> tuple[int, float]:
    """(step, value) of the last value logged at or before step `at`."""
    index = int(np.searchsorted(steps, at, side="right")) - 1
    if index < 0:
        raise Unmeasured(f"a run logs no {what} up to step {at:,.0f}")
    return int(steps[index]), float(values[index])


def _per_run(
    reference: Reference, reads: list[tuple[int, float]], resamples: int, seed: int
) -> tuple[Figure, list[str]]:
    """The `summary` of one (step, value) per run, and the steps read where they are not the
    figure's."""
    steps = [step for step, _ in reads]
    stat = summary([value for _, value in reads], resamples, seed)
    early = min(steps) < (1 - CLOSE) * reference.steps
    notes = [f"rlrun read at step {_span(steps)}"] if early else []
    return Figure(f"{stat.label} {stat.text()}", stat.point), notes


def _no_atari_training_returns(runs: Sequence[RunRecord]) -> None:
    if any(run.value("env.family") == "atari" for run in runs):
        raise Unmeasured("rlrun's Atari training return is a clipped sum per life, the figure a "
                         "full-game score, and rlrun logs no full-game training return")


def _policy_difference(reference: Reference, runs: Sequence[RunRecord]) -> list[str]:
    """The evaluation policy, where rlrun's runs did not evaluate as the figure did."""
    flags = {run.value("eval.deterministic") for run in runs} & {"True", "False"}
    ours = sorted("deterministic" if flag == "True" else "stochastic" for flag in flags)
    if ours in ([], [reference.policy]):
        return []
    return [f"{reference.policy} evaluation vs rlrun's {' and '.join(ours)}"]


def _train_window(
    reference: Reference, runs: Sequence[RunRecord], at: float, resamples: int, seed: int
) -> tuple[Figure, list[str]]:
    """Per run, the last training return logged at or before the figure's step."""
    _no_atari_training_returns(runs)
    reads = [_read(run.train_steps, run.train_returns, at, "training return") for run in runs]
    figure, notes = _per_run(reference, reads, resamples, seed)
    windows = ", ".join(sorted({run.value("logger.return_window") for run in runs}))
    if reference.window is None:
        notes.append(f"their window not stated (rlrun's: {windows} episodes)")
    elif windows != str(reference.window):
        notes.append(f"window {reference.window} episodes vs rlrun's {windows}")
    return figure, notes


def _evaluation(
    reference: Reference, runs: Sequence[RunRecord], at: float, resamples: int, seed: int
) -> tuple[Figure, list[str]]:
    """Per run, its last evaluation at or before the figure's step."""
    reads = [_read(run.eval_steps, run.eval_returns, at, "evaluation") for run in runs]
    figure, notes = _per_run(reference, reads, resamples, seed)
    return figure, notes + _policy_difference(reference, runs)


def _max_seed_mean(
    reference: Reference, runs: Sequence[RunRecord], at: float, resamples: int, seed: int
) -> tuple[Figure, list[str]]:
    """The highest mean over runs of the evaluations at the steps every run evaluated at, up to
    the figure's step."""
    steps = [run.eval_steps[run.eval_steps <= at] for run in runs]
    shared = functools.reduce(np.intersect1d, steps)
    if not len(shared):
        raise Unmeasured(f"the runs share no evaluation step up to {at:,.0f}")
    means = np.mean([run.eval_returns[np.searchsorted(run.eval_steps, shared)] for run in runs],
                    axis=0)
    best = int(np.argmax(means))
    text = (f"max seed mean {means[best]:.1f} (at step {shared[best]:,}, best of {len(shared)} "
            f"evaluations of {len(runs)} seeds)")
    return Figure(text, float(means[best])), _policy_difference(reference, runs)


def _auc(
    reference: Reference, runs: Sequence[RunRecord], at: float, resamples: int, seed: int
) -> tuple[Figure, list[str]]:
    """Per run, the mean of every training return logged up to the figure's step."""
    _no_atari_training_returns(runs)
    reads = []
    for run in runs:
        last, _ = _read(run.train_steps, run.train_returns, at, "training return")
        reads.append((last, float(np.mean(run.train_returns[run.train_steps <= at]))))
    figure, notes = _per_run(reference, reads, resamples, seed)
    return figure, [*notes, "rlrun averages its logged window means, the figure every episode"]


_MEASURES = {"train_window": _train_window, "eval_agent": _evaluation, "eval_seeds": _evaluation,
             "max_seed_mean": _max_seed_mean, "auc": _auc}
"""How rlrun's figure is computed, by `measure_kind` without its evaluation policy."""


def _budget(run: RunRecord) -> int:
    """The run's length: its `total_timesteps`, else its last step."""
    text = run.value("total_timesteps")
    return int(text) if text.isdigit() else run.steps


def _setting_differences(reference: Reference, runs: Sequence[RunRecord]) -> list[str]:
    """Env version, run length (and so the horizon of a decaying learning rate) and seeds, where
    they differ."""
    notes = []
    _, version = split_env_id(runs[0].env)
    if reference.env_version != version:
        notes.append(f"{reference.env_version} vs rlrun's {version}")
    budgets = [_budget(run) for run in runs]
    annealed = " (rlrun's lr anneals over its run)" if any(
        run.value("optimizer.schedule") == "linear" for run in runs) else ""
    if reference.budget is None:
        notes.append(f"their run length not stated (rlrun's {_span(budgets)})")
    elif any(abs(budget - reference.budget) > CLOSE * reference.budget for budget in budgets):
        notes.append(f"run length {reference.budget:,} vs rlrun's {_span(budgets)}{annealed}")
    agent = reference.measure_kind.startswith("eval_agent")
    theirs = "one agent" if agent else f"{reference.seeds} seeds"
    if reference.seeds is None:
        notes.append(f"their seeds not stated (rlrun's {len(runs)})")
    elif reference.seeds != len(runs):
        notes.append(f"{theirs} vs rlrun's {len(runs)}")
    return notes


def ratio(ours: float, theirs: float) -> str:
    """ours / theirs for positive returns; the difference otherwise (ratios of negative returns mislead)."""
    if ours > 0 and theirs > 0:
        return f"{ours / theirs:.2f}x"
    return f"{ours - theirs:+.1f}"
