"""rlrun-report's statistics, computed with rliable (Agarwal et al. 2021, "Deep RL at the Edge of
the Statistical Precipice").

Scores are matrices of shape (runs, tasks): one row per run (seed), one column per env, and a
third axis of steps for learning curves. Every interval is rliable's stratified percentile
bootstrap (`rliable.library.get_interval_estimates`): runs are resampled with replacement
within each task, `resamples` times. rliable draws from numpy's global generator, so each call
here seeds it with `seed` and puts its state back afterwards: an interval depends only on its
own scores, `resamples` and `seed`, never on what else the report holds.

A group of runs is summarised by `summary`: its IQM and CI from `MIN_RUNS_FOR_IQM` runs up, its
mean and [min, max] below that, each labelled so (`Summary.label`).

rliable and scipy are imported where they compute, so that `rlrun-report --help` loads neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

RESAMPLES = 2000
"""Bootstrap resamples per confidence interval (count)."""
CONFIDENCE = 0.95
"""Coverage of the confidence intervals."""

Statistic = Callable[..., np.ndarray]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """numpy's global generator (the one rliable draws from) seeded, then restored."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm_and_mean(scores: np.ndarray) -> np.ndarray:
    """[IQM, mean] of a (runs, tasks) matrix: rliable's aggregate_iqm (the 25% trimmed mean of
    all its entries) and aggregate_mean (the mean over tasks of each task's mean over runs)."""
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores)])


def iqm_per_step(scores: np.ndarray) -> np.ndarray:
    """rliable's aggregate_iqm of each step of a (runs, tasks, steps) array, all steps at once."""
    import scipy.stats

    return scipy.stats.trim_mean(scores.reshape(-1, scores.shape[-1]), proportiontocut=0.25, axis=0)


def interval(
    scores: np.ndarray | list[np.ndarray], statistic: Statistic, resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point estimate, CI low, CI high) of `statistic` by rliable's stratified bootstrap.

    Args:
        scores: One (runs, tasks, ...) array, or a list of them resampled independently (the
            arguments of a statistic such as the probability of improvement).
        statistic: Maps the score array(s) to a 1-D array (or a number).
        resamples: Bootstrap resamples (count).
        seed: Seed of the resamples.
    """
    from rliable import library

    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            {"scores": scores}, statistic, reps=resamples, confidence_interval_size=CONFIDENCE
        )
    low, high = np.asarray(intervals["scores"])
    return np.asarray(points["scores"]), low, high


def improvement(
    x: np.ndarray, y: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """P(X > Y) and its CI: rliable's probability_of_improvement of the (runs, tasks) scores `x`
    over `y` (per task, the Mann-Whitney U of X's runs against Y's over nx*ny, 0.5 for identical
    samples; averaged over tasks), both resampled independently."""
    from rliable import metrics

    point, low, high = interval([x, y], metrics.probability_of_improvement, resamples, seed)
    return float(point), float(low[0]), float(high[0])


def score_distribution(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """rliable's run score distribution (`library.score_distributions`: the fraction of all
    (run, task) scores above each threshold), for all thresholds in one comparison."""
    return np.mean(scores.reshape(-1, 1) > np.asarray(thresholds).reshape(1, -1), axis=0)


def performance_profile(
    scores: np.ndarray, thresholds: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fraction of runs (all tasks pooled) scoring above each threshold, with its CI: rliable's
    `create_performance_profile` of the run score distribution."""
    from rliable import library

    with _seeded(seed):
        profiles, intervals = library.create_performance_profile(
            {"scores": scores}, thresholds, custom_profile_func=score_distribution, reps=resamples,
            confidence_interval_size=CONFIDENCE,
        )
    low, high = intervals["scores"]
    return profiles["scores"], low, high


# ----- what a group of runs can say ----------------------------------------------------------
MIN_RUNS_FOR_IQM = 5
"""Fewest runs (count) whose IQM and bootstrap CI are reported; below it the IQM drops no run (it is
the mean) and a bootstrap over so few runs spans about [min, max], so the mean and the range are."""
IQM_LABEL = f"IQM [{CONFIDENCE:.0%} CI]"
"""How `summary` names its statistic for `MIN_RUNS_FOR_IQM` runs or more."""
MEAN_LABEL = "mean [min, max]"
"""How `summary` names its statistic below `MIN_RUNS_FOR_IQM` runs."""


class Summary(NamedTuple):
    """One statistic of a group of runs and its interval, with the name that says which they are."""

    label: str
    """`IQM_LABEL` or `MEAN_LABEL`."""
    point: float
    """The IQM or the mean."""
    low: float
    """CI low end, or the minimum."""
    high: float
    """CI high end, or the maximum."""

    def text(self, digits: int = 1) -> str:
        """`312.0 [290.1, 330.2]`."""
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def summary_label(runs: int) -> str:
    """The statistic reported for `runs` runs: `IQM_LABEL` from `MIN_RUNS_FOR_IQM` up, else
    `MEAN_LABEL`."""
    return IQM_LABEL if runs >= MIN_RUNS_FOR_IQM else MEAN_LABEL


def summary(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0) -> Summary:
    """The statistic of one value per run that says what it is: from `MIN_RUNS_FOR_IQM` runs the IQM
    with its stratified bootstrap CI, below that the mean with [min, max]. nan when a value is."""
    scores = np.asarray(values, dtype=float)
    if summary_label(len(scores)) == MEAN_LABEL:
        return Summary(MEAN_LABEL, float(scores.mean()), float(scores.min()), float(scores.max()))
    (iqm, _), low, high = interval(scores.reshape(-1, 1), iqm_and_mean, resamples, seed)
    return Summary(IQM_LABEL, float(iqm), float(low[0]), float(high[0]))


def summary_per_step(
    curves: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """`summary` at every step of a (runs, steps) array: (label, centre, low, high), all steps at
    once."""
    if summary_label(len(curves)) == MEAN_LABEL:
        return MEAN_LABEL, curves.mean(axis=0), curves.min(axis=0), curves.max(axis=0)
    centre, low, high = interval(curves[:, np.newaxis, :], iqm_per_step, resamples, seed)
    return IQM_LABEL, centre, low, high
