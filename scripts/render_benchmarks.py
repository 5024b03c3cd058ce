"""Render docs/benchmarks.md from docs/benchmarks.template.md and the results shipped beside it.

Every result on the page (returns, intervals, counts, run times, comparisons with published
figures) is a placeholder of the template, computed from these files:

- `docs/benchmarks/<suite>/runs.csv`: one row per run with its final evaluation return, env
  steps and wall time, and, where the column is present, its last training return
  (`final_train_return`);
- `docs/benchmarks/<suite>/curves.csv`, where shipped: for each run, one row per evaluation step
  with the evaluation return and the last training return at or before it (and thinned
  training-only rows with an empty `eval_return`);
- `rlrun/results/reference/scores.csv` (published figures) and `rlrun/results/reference/random.csv` (random
  play), read by column name.

Template syntax:

- `{{ name arg ... }}` becomes `PLACEHOLDERS[name](data, *args)`; the arguments are split as a
  shell splits them, so `"RL Zoo"` is one argument;
- `{{ if name arg ... }}A{{ else }}B{{ end }}` keeps A when `CONDITIONS[name](data, *args)` holds
  and B otherwise (the else part is optional; blocks do not nest).

Usage: `python scripts/render_benchmarks.py` writes docs/benchmarks.md; `--check` writes nothing
and exits 1 when the page differs from what the template and the data give.
"""

from __future__ import annotations

import argparse
import csv
import functools
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's rlrun, not an installed one
from rlrun.config import ConfigError
from rlrun.results import statistics as stats
from rlrun.results.references import (
    Reference,
    load_random_scores,
    load_references,
    random_score,
    split_env_id,
)

TEMPLATE = ROOT / "docs" / "benchmarks.template.md"
"""The page's text with its placeholders."""
PAGE = ROOT / "docs" / "benchmarks.md"
"""The rendered page."""
RESULTS = ROOT / "docs" / "benchmarks"
"""One folder per suite holding runs.csv and, where shipped, curves.csv."""
SCORES = ROOT / "rlrun" / "results" / "reference" / "scores.csv"
"""Published figures."""
RANDOM = ROOT / "rlrun" / "results" / "reference" / "random.csv"
"""Returns of a uniform-random policy."""

GOALS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "Pendulum-v1": -250.0}
"""The return each algorithm is held to on each classic-control task."""
BUDGET_TOLERANCE = 0.05
"""Budgets this close are the same budget (fraction): a run stops at the first whole batch past
its `total_timesteps`."""
MAX_BUDGET_RATIO = 2.0
"""A published figure is compared only up to this multiple of the runs' budget."""
NAMES = {
    "ppo": "PPO", "ppo_kl": "PPO-KL", "trpo": "TRPO", "npg": "NPG", "a2c": "A2C",
    "reinforce": "REINFORCE", "offpac": "off-policy AC", "cem": "CEM", "dqn": "DQN",
    "sarsa": "SARSA", "rlhf": "RLHF", "ddpg": "DDPG", "td3": "TD3", "sac": "SAC",
}
"""Display name of each algorithm, in the order of the tables."""
INTERVALS = {"IQM": "95% CI", "mean": "range"}
"""The interval that goes with each summary statistic."""
MEASURES = {
    "eval": "final evaluation return",
    "train": "last training return",
    "peak": "max over training of the seed-mean evaluation return",
}
"""rlrun's measures a published figure can be compared with."""

T = TypeVar("T")
Groups = dict[tuple[str, str], list["Run"]]
"""A suite's runs by (env, algo)."""


class PageError(Exception):
    """The template or the data cannot make the page."""


# ----- statistics ---------------------------------------------------------------------------
def summary(values: Sequence[float]) -> tuple[str, float, float, float]:
    """(label, point, low, high) of one group's per-seed values by `rlrun.results.statistics.summary`: "IQM"
    and its 95% CI from `stats.MIN_RUNS_FOR_IQM` runs up, else "mean", lowest, highest."""
    if not values:
        raise PageError("no values to summarise")
    return _summary(tuple(float(value) for value in values))


@functools.cache
def _summary(values: tuple[float, ...]) -> tuple[str, float, float, float]:
    found = stats.summary(values)
    return ("IQM" if found.label == stats.IQM_LABEL else "mean"), found.point, found.low, found.high


def standing(values: Sequence[float], published: float) -> str:
    """"ahead" when `published` lies below the values' interval, "behind" above it, else
    "level"."""
    _, _, low, high = summary(values)
    return "ahead" if published < low else "behind" if published > high else "level"


def placement(values: Sequence[float], published: float) -> str:
    """Where `published` lies against the values' interval, in words."""
    side = {"ahead": "below", "behind": "above", "level": "inside"}[standing(values, published)]
    if summary(values)[0] == "IQM":
        return f"{side} the 95% CI"
    if side == "inside":
        return f"inside the range of the {len(values)} seeds"
    return f"{side} every seed"


# ----- formatting ---------------------------------------------------------------------------
def number(value: float) -> str:
    """A return as the page prints it: whole numbers from 100 up, else one decimal."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def signed(value: float) -> str:
    return ("+" if value > 0 else "") + number(value)


def steps_text(steps: float) -> str:
    """Env steps to two significant digits: 100352 -> 100k, 1001472 -> 1M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if steps >= size:
            return f"{float(f'{steps / size:.2g}'):g}{unit}"
    return f"{steps:g}"


def described(values: Sequence[float]) -> str:
    """"IQM 500 [95% CI 491, 500]" or "mean 2,893 [range 1,631, 3,547]"."""
    label, point, low, high = summary(values)
    return f"{label} {number(point)} [{INTERVALS[label]} {number(low)}, {number(high)}]"


def per_seed(values: Iterable[float]) -> str:
    return " / ".join(number(value) for value in values)


def name(algo: str) -> str:
    return NAMES.get(algo, algo.upper())


def listing(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def seed_range(seeds: Iterable[int]) -> str:
    """"0-4" for consecutive seeds, else "0, 2, 5"."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ----- data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One row of a suite's runs.csv."""

    env: str
    algo: str
    seed: int
    final_return: float
    """The last evaluation return."""
    steps: int
    """Env steps run."""
    wall_s: float
    """Wall time of the run (s)."""
    sps: float
    """Env steps per second."""
    final_train_return: float | None
    """The last training return, where runs.csv has the column."""


@dataclass(frozen=True)
class Point:
    """One row of a suite's curves.csv."""

    step: int
    eval_return: float | None
    train_return: float | None


def figure(pub: Reference) -> str:
    """A published figure as the page writes it: mean ± spread."""
    return number(pub.mean) + ("" if pub.spread is None else f" ± {number(pub.spread)}")


def _rows(path: Path, columns: Sequence[str], make: Callable[[dict[str, str]], T]) -> list[T]:
    """`make` of each row of a CSV (a dict by column name), after checking that it has `columns`
    (others are ignored); a value `make` cannot read names its file and line."""
    if not path.is_file():
        raise PageError(f"{path} is missing")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise PageError(f"{path} lacks the columns {', '.join(sorted(missing))}")
        made = []
        for line, row in enumerate(reader, start=2):
            try:
                made.append(make(row))
            except (TypeError, ValueError) as error:
                raise PageError(f"{path} line {line}: {error}") from None
        return made


def _optional(text: str | None, kind: type) -> float | int | None:
    return kind(float(text)) if text not in (None, "") else None


def _run(row: dict[str, str]) -> Run:
    return Run(row["env"], row["algo"], int(row["seed"]), float(row["final_return"]),
               int(row["steps"]), float(row["wall_s"]), float(row["sps"]),
               _optional(row.get("final_train_return"), float))


def _point(row: dict[str, str]) -> tuple[tuple[str, str, int], Point]:
    return (row["env"], row["algo"], int(row["seed"])), Point(
        int(row["step"]), _optional(row["eval_return"], float),
        _optional(row["train_return"], float))


class Data:
    """The shipped files, each read once."""

    def __init__(self, results: Path | None = None, scores: Path | None = None,
                 random: Path | None = None):
        self.results = results or RESULTS
        self.scores = scores or SCORES
        self.random = random or RANDOM
        self._read: dict[tuple[str, str], object] = {}

    def _once(self, what: str, suite: str, read: Callable[[str], T]) -> T:
        if (what, suite) not in self._read:
            self._read[what, suite] = read(suite)
        return self._read[what, suite]

    def runs(self, suite: str) -> Groups:
        """The suite's runs by (env, algo), each group sorted by seed."""
        return self._once("runs", suite, self._read_runs)

    def _read_runs(self, suite: str) -> Groups:
        path = self.results / suite / "runs.csv"
        columns = ("env", "algo", "seed", "final_return", "steps", "wall_s", "sps")
        groups: Groups = {}
        for run in _rows(path, columns, _run):
            group = groups.setdefault((run.env, run.algo), [])
            if any(other.seed == run.seed for other in group):
                raise PageError(f"{path}: two runs of {run.algo} on {run.env} with seed {run.seed}")
            group.append(run)
        return {key: sorted(group, key=lambda run: run.seed) for key, group in groups.items()}

    def group(self, suite: str, env: str, algo: str) -> list[Run]:
        try:
            return self.runs(suite)[env, algo]
        except KeyError:
            raise PageError(f"{suite}/runs.csv has no runs of {algo} on {env}") from None

    def curves(self, suite: str) -> dict[tuple[str, str, int], list[Point]] | None:
        """Each run's curve by (env, algo, seed), or None when the suite ships no curves.csv."""
        return self._once("curves", suite, self._read_curves)

    def _read_curves(self, suite: str) -> dict[tuple[str, str, int], list[Point]] | None:
        path = self.results / suite / "curves.csv"
        if not path.is_file():
            return None
        columns = ("env", "algo", "seed", "step", "eval_return", "train_return")
        curves: dict[tuple[str, str, int], list[Point]] = {}
        for key, point in _rows(path, columns, _point):
            curves.setdefault(key, []).append(point)
        curves = {key: sorted(points, key=lambda p: p.step) for key, points in curves.items()}
        for runs in self.runs(suite).values():
            for run in runs:
                _check_ends_alike(path, run, curves.get((run.env, run.algo, run.seed), []))
        return curves

    def curve(self, suite: str, run: Run) -> list[Point]:
        curves = self.curves(suite)
        points = None if curves is None else curves.get((run.env, run.algo, run.seed))
        if not points:
            raise PageError(f"{suite}/curves.csv has no rows for {run.algo} on {run.env}, "
                            f"seed {run.seed}")
        return points

    def published(self) -> list[Reference]:
        return self._once("published", "", lambda _: _checked(load_references, self.scores))

    def figure(self, source: str, env: str, algo: str, steps: int) -> Reference:
        """The one figure of `source` (a prefix of its name) for this env (in any version),
        algorithm and budget."""
        base, _ = split_env_id(env)
        found = [pub for pub in self.published() if pub.source.startswith(source)
                 and (pub.env, pub.algorithm, pub.steps) == (base, algo, steps)]
        if len(found) != 1:
            raise PageError(f"{len(found)} figures of {source} for {algo} on {env} at {steps} "
                            f"steps in {self.scores}; the page needs exactly one")
        return found[0]

    def random_return(self, env: str) -> float:
        scores = self._once("random", "", lambda _: _checked(load_random_scores, self.random))
        found = random_score(scores, env)
        if found is None:
            raise PageError(f"{self.random} has no random score for {env}")
        return found.mean


def _checked(load: Callable[[Path], T], path: Path) -> T:
    """`load(path)`, its ConfigError (a missing file, column or value) as a PageError."""
    try:
        return load(path)
    except ConfigError as error:
        raise PageError(str(error)) from None


def _check_ends_alike(path: Path, run: Run, points: list[Point]) -> None:
    """A run's curve must end at its final return in runs.csv: both come from the same runs."""
    evaluated = [p.eval_return for p in points if p.eval_return is not None]
    if not evaluated or not np.isclose(evaluated[-1], run.final_return, rtol=1e-9, atol=1e-6):
        end = f"ends at {evaluated[-1]!r}" if evaluated else "has no evaluation"
        raise PageError(f"{path}: {run.algo} on {run.env}, seed {run.seed} {end} but runs.csv "
                        f"says {run.final_return!r}; ship runs.csv and curves.csv from the same "
                        "runs")


# ----- rlrun's measures ---------------------------------------------------------------------
@dataclass(frozen=True)
class SeedValues:
    """One value per seed of a group, all taken at `step`, within the first `budget` steps."""

    values: tuple[float, ...]
    step: int
    budget: int
    """The steps the measure looked at: `step` itself, or the window a best value was taken in."""


def same_budget(steps: float, budget: float) -> bool:
    return abs(steps - budget) <= BUDGET_TOLERANCE * budget


def _evaluations(points: list[Point], budget: int) -> list[Point]:
    """The evaluations up to the budget (or a batch past it)."""
    limit = budget * (1 + BUDGET_TOLERANCE)
    return [p for p in points if p.eval_return is not None and p.step <= limit]


def _at(points: list[Point], budget: int) -> Point | None:
    """The last evaluation up to the budget, if it is at the budget."""
    evaluated = _evaluations(points, budget)
    return evaluated[-1] if evaluated and same_budget(evaluated[-1].step, budget) else None


def _final_train(data: Data, suite: str, run: Run) -> float | None:
    if run.final_train_return is not None:
        return run.final_train_return
    if data.curves(suite) is None:
        return None
    trained = [p.train_return for p in data.curve(suite, run) if p.train_return is not None]
    return trained[-1] if trained else None


def _peak(data: Data, suite: str, runs: list[Run], budget: int) -> SeedValues | None:
    """The per-seed evaluations at the step where their mean is highest, within the budget."""
    if data.curves(suite) is None:
        return None
    tables = [{p.step: p.eval_return for p in _evaluations(data.curve(suite, run), budget)}
              for run in runs]
    common = sorted(set.intersection(*(set(steps) for steps in tables)))
    if not common:
        return None
    best = max(common, key=lambda step: np.mean([steps[step] for steps in tables]))
    return SeedValues(tuple(steps[best] for steps in tables), best, common[-1])


def seed_values(data: Data, suite: str, runs: list[Run], measure: str,
                budget: int | None = None) -> SeedValues | None:
    """The group's per-seed `measure` at `budget` (None: at the end), or None when the shipped
    files do not hold it. A budget beyond the runs' own takes their end."""
    end = max(run.steps for run in runs)
    if measure not in MEASURES:
        raise PageError(f"unknown measure {measure!r}; one of {', '.join(MEASURES)}")
    if measure == "peak":
        return _peak(data, suite, runs, budget or end)
    if budget is None or budget >= end or same_budget(end, budget):
        if measure == "eval":
            return SeedValues(tuple(run.final_return for run in runs), end, end)
        trained = [_final_train(data, suite, run) for run in runs]
        return None if None in trained else SeedValues(tuple(trained), end, end)
    if data.curves(suite) is None:
        return None
    points = [_at(data.curve(suite, run), budget) for run in runs]
    if None in points:
        return None
    values = [p.eval_return if measure == "eval" else p.train_return for p in points]
    step = max(p.step for p in points)
    return None if None in values else SeedValues(tuple(values), step, step)


# ----- comparisons with published figures ---------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One group's measure beside one published figure."""

    env: str
    algo: str
    ours: SeedValues
    published: Reference

    @property
    def standing(self) -> str:
        return standing(self.ours.values, self.published.mean)

    def ours_text(self) -> str:
        values = self.ours.values
        return f"{described(values)} ({len(values)} seeds at {steps_text(self.ours.step)})"

    def published_text(self) -> str:
        pub = self.published
        return f"{figure(pub)} ({_seed_count(pub)} at {steps_text(pub.steps)})"

    def difference(self) -> str:
        """rlrun's point estimate minus the published mean, and their ratio when both are
        positive."""
        point, theirs = summary(self.ours.values)[1], self.published.mean
        ratio = f", {point / theirs:.2f}x" if point > 0 and theirs > 0 else ""
        return signed(point - theirs) + ratio

    def differs(self) -> str:
        """The env version and the budget, where they differ (published vs rlrun)."""
        _, version = split_env_id(self.env)
        notes = []
        if self.published.env_version != version:
            notes.append(f"{self.published.env_version} vs {version}")
        if not same_budget(self.ours.budget, self.published.steps):
            notes.append(f"budget {steps_text(self.published.steps)} vs "
                         f"{steps_text(self.ours.budget)}")
        return "; ".join(notes) or "-"


def _rank(key: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(key) if key in order else len(order), key)


def ordered(groups: Groups) -> list[tuple[tuple[str, str], list[Run]]]:
    """The groups by env (the classic tasks first) then algorithm, in the tables' order."""
    return sorted(groups.items(), key=lambda item: (_rank(item[0][0], list(GOALS)),
                                                    _rank(item[0][1], list(NAMES))))


def comparisons(data: Data, suite: str, source: str,
                measure: str) -> tuple[list[Comparison], list[str]]:
    """Each group of the suite against each figure of `source` for its env and algorithm, at
    most `MAX_BUDGET_RATIO` times its budget; and the pairs the shipped files cannot compare
    yet. Refuses to find none: the template guards a part the shipped files cannot fill."""
    found, missing = [], []
    for (env, algo), runs in ordered(data.runs(suite)):
        end = max(run.steps for run in runs)
        for pub in data.published():
            if (not pub.source.startswith(source) or pub.env != split_env_id(env)[0]
                    or pub.algorithm != algo or pub.steps is None
                    or pub.steps > MAX_BUDGET_RATIO * end):
                continue
            ours = seed_values(data, suite, runs, measure, pub.steps)
            if ours is None:
                missing.append(f"{name(algo)} on {env} at {steps_text(pub.steps)}")
            else:
                found.append(Comparison(env, algo, ours, pub))
    if not found:
        raise PageError(f"no figure of {source} can be compared with {suite}'s {measure} from "
                        "the shipped files; guard this part of the template with an if")
    return found, missing


# ----- placeholders -------------------------------------------------------------------------
def _all_runs(data: Data, suite: str) -> list[Run]:
    return [run for runs in data.runs(suite).values() for run in runs]


def _finals(runs: list[Run]) -> list[float]:
    return [run.final_return for run in runs]


def p_runs(data: Data, suite: str) -> str:
    return str(len(_all_runs(data, suite)))


def p_pairs(data: Data, suite: str) -> str:
    return str(len(data.runs(suite)))


def p_seeds(data: Data, suite: str) -> str:
    return seed_range({run.seed for run in _all_runs(data, suite)})


def p_run_time(data: Data, suite: str) -> str:
    """The summed wall time of the suite's runs."""
    total = sum(run.wall_s for run in _all_runs(data, suite))
    return f"{total:,.0f} s ({total / 3600:.1f} h)"


def p_sps(data: Data, suite: str) -> str:
    """The range of env steps per second over the suite's runs."""
    sps = [run.sps for run in _all_runs(data, suite)]
    return f"{min(sps):.0f}-{max(sps):.0f}"


def p_hours_per_million(data: Data, suite: str) -> str:
    """Hours a 1M-step run would take at each algorithm's mean speed in this suite."""
    speeds: dict[str, list[float]] = {}
    for (_, algo), runs in ordered(data.runs(suite)):
        speeds.setdefault(algo, []).extend(run.sps for run in runs)
    return listing([f"{name(algo)} {1e6 / np.mean(sps) / 3600:.1f} h"
                    for algo, sps in speeds.items()])


def p_resamples(data: Data) -> str:
    return str(stats.RESAMPLES)


def p_goals(data: Data) -> str:
    return ", ".join(f"≥ {number(goal)} on {env}" for env, goal in GOALS.items())


def _solved(values: Sequence[float], goal: float, rule: str) -> bool:
    if rule == "summary":
        return summary(values)[1] >= goal
    if rule == "mean":
        return float(np.mean(values)) >= goal
    if rule == "every":
        return min(values) >= goal
    raise PageError(f"unknown rule {rule!r}; one of summary, mean, every")


def p_solved(data: Data, suite: str, rule: str) -> str:
    """"27 of 34": the pairs whose final returns reach their env's goal by `rule` (summary: the
    group's summary statistic; mean: the mean over seeds; every: each seed)."""
    groups = data.runs(suite)
    hits = sum(_solved(_finals(runs), GOALS[env], rule) for (env, _), runs in groups.items())
    return f"{hits} of {len(groups)}"


def p_unsolved(data: Data, suite: str) -> str:
    """The pairs whose summary statistic misses its env's goal."""
    misses = [f"{name(algo)} on {env} ({described(_finals(runs))})"
              for (env, algo), runs in ordered(data.runs(suite))
              if not _solved(_finals(runs), GOALS[env], "summary")]
    return "; ".join(misses) or "none"


def p_result(data: Data, suite: str, env: str, algo: str) -> str:
    runs = data.group(suite, env, algo)
    return f"{described(_finals(runs))}, {len(runs)} seeds"


def p_finals(data: Data, suite: str, env: str, algo: str) -> str:
    """Each seed's final return: "seed 0: -88.4, seed 1: ..."."""
    return ", ".join(f"seed {run.seed}: {number(run.final_return)}"
                     for run in data.group(suite, env, algo))


def p_mean(data: Data, suite: str, env: str, algo: str) -> str:
    return number(float(np.mean(_finals(data.group(suite, env, algo)))))


def p_random(data: Data, env: str) -> str:
    return number(data.random_return(env))


def p_published(data: Data, source: str, env: str, algo: str, steps: str) -> str:
    return figure(data.figure(source, env, algo, int(steps)))


def p_solved_table(data: Data, suite: str) -> str:
    """Algorithms by envs: each cell the summary of the final returns, bold when it reaches the
    env's goal; then each algorithm's env steps and mean wall time per run, env by env."""
    groups = data.runs(suite)
    envs = sorted({env for env, _ in groups}, key=lambda env: _rank(env, list(GOALS)))
    algos = sorted({algo for _, algo in groups}, key=lambda algo: _rank(algo, list(NAMES)))
    labels = sorted({summary(_finals(runs))[0] for runs in groups.values()})
    statistic = " / ".join(f"{label} [{INTERVALS[label]}]" for label in labels)
    header = ["algo", *(f"{env}: {statistic}" for env in envs), "env steps",
              "wall per run (s), env by env"]
    rows = []
    for algo in algos:
        cells, steps, walls = [], [], []
        for env in envs:
            runs = groups.get((env, algo))
            if runs is None:
                cells.append("-")
                continue
            _, point, low, high = summary(_finals(runs))
            cell = f"{number(point)} [{number(low)}, {number(high)}]"
            cells.append(f"**{cell}**" if _solved(_finals(runs), GOALS[env], "summary") else cell)
            steps.append(steps_text(max(run.steps for run in runs)))
            walls.append(f"{np.mean([run.wall_s for run in runs]):.0f}")
        rows.append([name(algo), *cells, " / ".join(dict.fromkeys(steps)), " / ".join(walls)])
    return table(header, rows)


def _best(points: list[Point]) -> str:
    best = max((p for p in points if p.eval_return is not None), key=lambda p: p.eval_return)
    return f"{number(best.eval_return)} ({steps_text(best.step)})"


def p_seeds_table(data: Data, suite: str, *at_steps: str) -> str:
    """One row per group: each seed's final evaluation return and their summary; each seed's last
    training return, where shipped; with curves, each seed's evaluation at `at_steps`, each
    seed's best evaluation and the max over training of the seed mean; and the mean wall time
    per run."""
    curves = data.curves(suite) is not None
    trained = c_shipped(data, suite, "train")
    header = ["env", "algo", "seeds", "env steps", "final evaluation return, per seed", "summary"]
    header += ["last training return, per seed"] if trained else []
    if curves:
        header += [f"evaluation at {steps_text(int(step))}, per seed" for step in at_steps]
        header += ["best evaluation, per seed (step)", "max over training of the seed mean (step)"]
    header += ["wall per run (s)"]
    rows = []
    for (env, algo), runs in ordered(data.runs(suite)):
        row = [env, name(algo), seed_range(run.seed for run in runs),
               steps_text(max(run.steps for run in runs)), per_seed(_finals(runs)),
               described(_finals(runs))]
        if trained:
            row.append(per_seed(seed_values(data, suite, runs, "train").values))
        if curves:
            for step in at_steps:
                values = seed_values(data, suite, runs, "eval", int(step))
                row.append("not evaluated there" if values is None else per_seed(values.values))
            row.append(" / ".join(_best(data.curve(suite, run)) for run in runs))
            peak = seed_values(data, suite, runs, "peak")
            row.append(f"{number(float(np.mean(peak.values)))} ({steps_text(peak.step)})")
        row.append(f"{np.mean([run.wall_s for run in runs]):.0f}")
        rows.append(row)
    return table(header, rows)


def _seed_count(pub: Reference) -> str:
    if pub.seeds is None:
        return "seeds not stated"
    return f"{pub.seeds} seed" + ("s" if pub.seeds != 1 else "")


def p_comparison_table(data: Data, suite: str, source: str, measure: str) -> str:
    """Each group against each figure of `source`, rlrun on `measure`: rlrun's summary over seeds,
    the figure, rlrun minus the figure, where the figure lies against rlrun's interval, and what
    still differs; then the pairs the shipped files cannot compare yet."""
    found, missing = comparisons(data, suite, source, measure)
    header = ["env", "algo", f"rlrun: {MEASURES[measure]}", f"{source}: figure",
              "rlrun - published", "published figure lies", "differs (published vs rlrun)"]
    rows = [[c.env, name(c.algo), c.ours_text(), c.published_text(), c.difference(),
             placement(c.ours.values, c.published.mean), c.differs()] for c in found]
    text = table(header, rows)
    if missing:
        text += ("\n\nNot compared yet, because the shipped files lack rlrun's measure at the "
                 f"published budget: {listing(missing)}.")
    return text


def p_standing(data: Data, suite: str, source: str, measure: str) -> str:
    """"ahead on 1 (...); level on 5 (...); behind on 6 (...)", each pair with its step and rlrun
    minus the figure."""
    found, _ = comparisons(data, suite, source, measure)
    parts = []
    for verdict in ("ahead", "level", "behind"):
        items = [f"{name(c.algo)} on {c.env} at {steps_text(c.ours.step)} ({c.difference()})"
                 for c in found if c.standing == verdict]
        if items:
            parts.append(f"{verdict} on {len(items)} ({', '.join(items)})")
    return "; ".join(parts)


def p_behind(data: Data, suite: str, source: str, measure: str) -> str:
    """The pairs where `source`'s figure lies above rlrun's interval."""
    found, _ = comparisons(data, suite, source, measure)
    items = [f"{name(c.algo)} on {c.env} ({described(c.ours.values)} at "
             f"{steps_text(c.ours.step)} against {figure(c.published)} at "
             f"{steps_text(c.published.steps)})" for c in found if c.standing == "behind"]
    return listing(items) if items else "none"


PER_SEED = re.compile(r"per-seed values ((?:-?\d+(?:\.\d+)?(?:, )?)+)")
"""Where a figure's measure lists the figure's own per-seed values."""


def p_published_seeds(data: Data, suite: str, env: str, algo: str, source: str,
                      steps: str) -> str:
    """Where rlrun's seeds lie among a figure's own per-seed values (listed in its measure)."""
    pub = data.figure(source, env, algo, int(steps))
    match = PER_SEED.search(pub.measure)
    if match is None:
        raise PageError(f"the measure of {source}'s {algo} figure at {steps} steps lists no "
                        "per-seed values")
    theirs = [float(value) for value in match.group(1).split(", ")]
    ours = seed_values(data, suite, data.group(suite, env, algo), "eval", int(steps))
    if ours is None:
        raise PageError(f"{suite} has no evaluation of {algo} on {env} at {steps} steps")
    best, worst = max(ours.values), min(ours.values)
    return (f"the published {len(theirs)} seeds range from {number(min(theirs))} to "
            f"{number(max(theirs))} with median {number(float(np.median(theirs)))}; "
            f"{sum(value < best for value in theirs)} of them end below rlrun's best seed "
            f"({number(best)}) and {sum(value < worst for value in theirs)} below its worst "
            f"({number(worst)})")


PLACEHOLDERS: dict[str, Callable[..., str]] = {
    "resamples": p_resamples, "runs": p_runs, "pairs": p_pairs, "seeds": p_seeds,
    "run_time": p_run_time, "sps": p_sps, "hours_per_million": p_hours_per_million,
    "goals": p_goals, "solved": p_solved, "unsolved": p_unsolved, "result": p_result,
    "finals": p_finals, "mean": p_mean, "random": p_random, "published": p_published,
    "solved_table": p_solved_table, "seeds_table": p_seeds_table,
    "comparison_table": p_comparison_table, "standing": p_standing, "behind": p_behind,
    "published_seeds": p_published_seeds,
}
"""Template name -> function(data, *arguments) giving the text."""


def c_curves(data: Data, suite: str) -> bool:
    """Whether the suite ships curves.csv."""
    return data.curves(suite) is not None


def c_shipped(data: Data, suite: str, measure: str) -> bool:
    """Whether every group of the suite has `measure` at its end in the shipped files."""
    return all(seed_values(data, suite, runs, measure) for runs in data.runs(suite).values())


CONDITIONS: dict[str, Callable[..., bool]] = {"curves": c_curves, "shipped": c_shipped}
"""Template name -> function(data, *arguments) deciding an if block."""


# ----- the template -------------------------------------------------------------------------
BLOCK = re.compile(r"\{\{ if (?P<test>[^}]*?) \}\}(?P<then>.*?)"
                   r"(?:\{\{ else \}\}(?P<other>.*?))?\{\{ end \}\}", re.DOTALL)
PLACEHOLDER = re.compile(r"\{\{ (?P<call>[^}]*?) \}\}")
NOTICE = ("<!-- Generated by scripts/render_benchmarks.py from docs/benchmarks.template.md and "
          "the files it names; edit those, not this page. -->\n")


def _call(functions: dict[str, Callable], text: str, data: Data):
    words = shlex.split(text)
    if not words or words[0] not in functions:
        raise PageError(f"unknown placeholder {{{{ {text} }}}}; known: "
                        f"{', '.join(sorted(functions))}")
    try:
        return functions[words[0]](data, *words[1:])
    except TypeError as error:
        raise PageError(f"{{{{ {text} }}}}: {error}") from None


def render(template: str, data: Data) -> str:
    """The template with its if blocks decided and its placeholders filled."""
    def decide(block: re.Match) -> str:
        return block["then"] if _call(CONDITIONS, block["test"], data) else block["other"] or ""

    text = BLOCK.sub(decide, template)
    stray = re.search(r"\{\{ (if .*?|else|end) \}\}", text)
    if stray:
        raise PageError(f"unmatched {stray[0]} in the template (if blocks do not nest)")
    return PLACEHOLDER.sub(lambda m: str(_call(PLACEHOLDERS, m["call"], data)), text)


def page(data: Data | None = None) -> str:
    """docs/benchmarks.md as the template and the shipped files make it."""
    return NOTICE + render(TEMPLATE.read_text(), data or Data())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/benchmarks.md is out of date")
    args = parser.parse_args(argv)
    try:
        text = page()
    except PageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    shown = PAGE.relative_to(ROOT)
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{shown} is out of date: run python scripts/render_benchmarks.py",
                  file=sys.stderr)
            return 1
        print(f"{shown} is up to date")
        return 0
    PAGE.write_text(text)
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
