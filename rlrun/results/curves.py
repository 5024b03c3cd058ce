"""The learning curves of a report (`rlrun.results.report`): each group's evaluation curve (the statistic
at every step of a common grid), its training-episode curve, and one PNG per env with the
published figures as markers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rlrun.results.plot_legend import add_legend
from rlrun.results.references import Reference, matching
from rlrun.results.runs import Group, RunRecord
from rlrun.results.statistics import summary_per_step

PLOTTED_BUDGET_RATIO = 2.0
"""Published figures at more than this multiple of a group's last step are left off its plot
(they stay in the table), so that the curves keep their scale."""
MAX_CURVE_POINTS = 200
"""Most grid steps of a learning curve (count); a denser union of eval steps is thinned evenly."""


def curve_grid(runs: list[RunRecord]) -> np.ndarray:
    """Steps where every run's curve is compared: the union of eval steps inside their common range.

    When the runs share no range (e.g. one evaluation each at different steps), the grid is the
    last step of the shortest run and the others are held at their nearest evaluation.
    """
    return _common_grid([run.eval_steps for run in runs])


def _common_grid(steps: list[np.ndarray]) -> np.ndarray:
    """`curve_grid` over any curves' steps (each increasing, none empty)."""
    start = max(each[0] for each in steps)
    end = min(each[-1] for each in steps)
    if start > end:
        return np.array([end])
    union = np.unique(np.concatenate(steps))
    grid = union[(union >= start) & (union <= end)]
    return np.linspace(start, end, MAX_CURVE_POINTS) if len(grid) > MAX_CURVE_POINTS else grid


def learning_curve(
    runs: list[RunRecord], resamples: int, seed: int
) -> tuple[np.ndarray, str, np.ndarray, np.ndarray, np.ndarray]:
    """(grid steps, statistic's label, centre, low, high) of the runs' eval/return_mean curves:
    IQM and CI, or mean and range below 5 runs (`rlrun.results.statistics.summary_per_step`)."""
    grid = curve_grid(runs)
    curves = np.stack([np.interp(grid, run.eval_steps, run.eval_returns) for run in runs])
    return grid, *summary_per_step(curves, resamples, seed)


def training_curve(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(grid steps, mean, number of runs) of the `rollout/ep_return_mean` curves of the runs that
    logged one, on their `curve_grid`-like grid; None when none did."""
    logged = [run for run in runs if len(run.train_steps)]
    if not logged:
        return None
    grid = _common_grid([run.train_steps for run in logged])
    curves = [np.interp(grid, run.train_steps, run.train_returns) for run in logged]
    return grid, np.mean(curves, axis=0), len(logged)


def image_name(env: str) -> str:
    return re.sub(r"[^\w.-]+", "_", env) + ".png"


def plotted_references(references: list[Reference], last_step: float) -> list[Reference]:
    """The published figures drawn on a curve that ends at `last_step`: those read at a stated step
    up to `PLOTTED_BUDGET_RATIO` times it (a figure without one has no place on the step axis)."""
    return [ref for ref in references
            if ref.steps is not None and ref.steps <= PLOTTED_BUDGET_RATIO * last_step]


def plot_env(
    groups: list[Group], path: Path, resamples: int, seed: int, references: list[Reference] | None = None
) -> None:
    """One PNG: the learning curve (IQM and its 95% CI band) of each group of one env, its mean
    training-episode return (`training_curve`, dashed), and the published figures of its
    algorithm (`references`) as markers at their budget."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # Agg canvas, no display or pyplot state

    figure = Figure(figsize=(9, 4.5), layout="constrained")
    axes = figure.subplots()
    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"].colors
    for index, group in enumerate(groups):
        color = palette[index % len(palette)]
        steps, statistic, centre, low, high = learning_curve(group.runs, resamples, seed)
        label = f"{group.label}: evaluation (n={len(group.runs)}, {statistic})"
        if len(steps) == 1:
            axes.errorbar(steps, centre, yerr=[centre - low, high - centre], fmt="o", color=color,
                          capsize=4, label=label)
        else:
            axes.plot(steps, centre, color=color, label=label)
            axes.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        training = training_curve(group.runs)
        if training is not None:
            train_steps, train_mean, logged = training
            axes.plot(train_steps, train_mean, color=color, linestyle="--", linewidth=1, alpha=0.7,
                      label=f"{group.label}: training episodes (mean of {logged})")
        plotted = plotted_references(matching(references or [], group.env, group.algo), float(steps[-1]))
        for marker, ref in zip("DsP^v<>", plotted, strict=False):
            spread = None if ref.spread is None else [[ref.spread], [ref.spread]]
            label = f"{group.algo}: {ref.source}, {ref.env_version}, {ref.measure_kind}"
            axes.errorbar([ref.steps], [ref.mean], yerr=spread, fmt=marker, color=color, mfc="none",
                          capsize=3, label=f"{label} at {ref.steps:,}")
    axes.set_title(groups[0].env)
    axes.set_xlabel("env steps")
    axes.set_ylabel("episode return over seeds (statistic in the legend)")
    axes.grid(alpha=0.3)
    add_legend(figure, axes)
    figure.savefig(path, dpi=120)
