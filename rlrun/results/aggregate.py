"""Across envs: aggregate normalised scores, performance profiles and probabilities of improvement.

A *method* is an algorithm with the values of the grouping overrides (a report group without its
env); its scores form a (runs, envs) matrix, the runs of each env in seed order. rliable needs
whole rows, so a method with more runs on one env than on another uses its first runs (lowest
seeds) of each env, as many as the env with the fewest has; the report says how many it used.

- Aggregates: IQM and mean of the method's normalised final returns over all its runs and
  normalised envs, with stratified bootstrap CIs (`rlrun.results.statistics.iqm_and_mean`).
- Performance profile: per method, the fraction of its runs whose normalised final return
  exceeds each threshold, with its CI band (rliable's run score distribution), in one PNG.
- Probability of improvement P(X > Y): for two methods that differ in one key (the algorithm or
  one override), on the envs both ran, from their raw final returns (it is a rank statistic,
  so normalising would not change it), with its CI. `--compare KEY=A,B` asks for the pairs
  with KEY=A against KEY=B, everything else equal; without it, every pair that differs in one
  key is compared when there are at most `AUTO_COMPARISONS` of them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlrun.config import ConfigError
from rlrun.results.plot_legend import add_legend
from rlrun.results.score_normalisation import Normalisation
from rlrun.results.statistics import (
    CONFIDENCE,
    MIN_RUNS_FOR_IQM,
    improvement,
    interval,
    iqm_and_mean,
    performance_profile,
)

if TYPE_CHECKING:
    from rlrun.results.runs import Group

AUTO_COMPARISONS = 10
"""Most pairs compared without `--compare` (count); each takes about a second per 1,000 resamples."""
PROFILE_THRESHOLDS = 101
"""Thresholds at which a performance profile is evaluated (count)."""


@dataclass
class Method:
    """One algorithm with its grouping values, over every env it ran on."""

    algo: str
    """Algorithm name."""
    setting: tuple[tuple[str, str], ...]
    """(key, value) of each grouping override."""
    groups: dict[str, Group]
    """Its report group on each env, by env id."""

    @property
    def label(self) -> str:
        return " ".join([self.algo, *(f"{key}={value}" for key, value in self.setting)])

    @property
    def values(self) -> dict[str, str]:
        """The value of `algo` and of every grouping key."""
        return {"algo": self.algo, **dict(self.setting)}

    def finals(self, envs: list[str]) -> np.ndarray:
        """(runs, envs) raw final returns: each env's first runs by seed, as many as the fewest."""
        runs = min(len(self.groups[env].runs) for env in envs)
        return np.array([[run.final_return for run in sorted(self.groups[env].runs, key=lambda r: r.seed)[:runs]]
                         for env in envs]).T


def methods_of(groups: list[Group]) -> list[Method]:
    """The groups gathered by (algo, setting), in label order."""
    found: dict[tuple, Method] = {}
    for group in groups:
        found.setdefault((group.algo, group.setting), Method(group.algo, group.setting, {}))
        found[group.algo, group.setting].groups[group.env] = group
    return sorted(found.values(), key=lambda method: method.label)


def normalised_scores(method: Method, norms: dict[str, Normalisation | None]) -> tuple[list[str], np.ndarray]:
    """The method's normalised envs and its (runs, envs) normalised final returns."""
    envs = sorted(env for env in method.groups if norms.get(env) is not None)
    if not envs:
        return [], np.empty((0, 0))
    finals = method.finals(envs)
    return envs, np.stack([norms[env](finals[:, i]) for i, env in enumerate(envs)], axis=1)


@dataclass
class Aggregate:
    """A method's IQM and mean over runs and envs of its normalised final returns."""

    method: Method
    """The method."""
    envs: list[str]
    """The normalised envs aggregated."""
    runs: int
    """Runs per env used (count)."""
    iqm: float
    """IQM of the normalised final returns; nan below `MIN_RUNS_FOR_IQM` runs in all."""
    iqm_ci: tuple[float, float]
    """Stratified bootstrap CI of the IQM; nan below `MIN_RUNS_FOR_IQM` runs in all."""
    mean: float
    """Mean over envs of the mean normalised final return."""
    mean_ci: tuple[float, float]
    """Stratified bootstrap CI of the mean; below `MIN_RUNS_FOR_IQM` runs in all, the lowest and
    highest normalised final return."""


def aggregates(
    methods: list[Method], norms: dict[str, Normalisation | None], resamples: int, seed: int
) -> list[Aggregate]:
    """The aggregate of every method with at least one normalised env."""
    found = []
    for method in methods:
        envs, scores = normalised_scores(method, norms)
        if not envs:
            continue
        if scores.size < MIN_RUNS_FOR_IQM:  # the IQM drops no run: the mean and its range
            found.append(Aggregate(method, envs, scores.shape[0], math.nan, (math.nan, math.nan),
                                   float(scores.mean()), (float(scores.min()), float(scores.max()))))
            continue
        point, low, high = interval(scores, iqm_and_mean, resamples, seed)
        found.append(Aggregate(method, envs, scores.shape[0], float(point[0]), (float(low[0]), float(high[0])),
                               float(point[1]), (float(low[1]), float(high[1]))))
    return found


# ----- probability of improvement -----------------------------------------------------------
@dataclass(frozen=True)
class CompareRequest:
    """`--compare KEY=A,B`: the methods with KEY=A against those with KEY=B."""

    key: str
    """`algo` or a grouping override key."""
    first: str
    """The value of X."""
    second: str
    """The value of Y."""


def parse_compare(text: str) -> CompareRequest:
    """`algo=ppo,a2c` -> CompareRequest('algo', 'ppo', 'a2c'); ConfigError when malformed."""
    key, equals, values = text.partition("=")
    parts = values.split(",")
    if not equals or not key or len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ConfigError(f"--compare {text}: give KEY=A,B with two different values, "
                          "e.g. --compare algo=ppo,a2c or --compare optimizer.lr=0.001,0.0003")
    return CompareRequest(key, parts[0], parts[1])


@dataclass
class Comparison:
    """P(X > Y) for two methods that differ in one key."""

    x: Method
    """The first method."""
    y: Method
    """The second method."""
    key: str
    """The key they differ in."""
    envs: list[str]
    """The envs both ran on."""
    runs: tuple[int, int]
    """Runs per env used of X and of Y (count)."""
    probability: float
    """P(X > Y), averaged over `envs`."""
    ci: tuple[float, float]
    """Its bootstrap CI; nan when X or Y has fewer than `MIN_RUNS_FOR_IQM` runs per env."""


def _differing_key(x: Method, y: Method) -> str | None:
    """The one key whose value differs between the methods; None if none or several."""
    keys = [key for key in x.values if x.values[key] != y.values.get(key)]
    return keys[0] if len(keys) == 1 else None


def _shared_envs(x: Method, y: Method) -> list[str]:
    return sorted(set(x.groups) & set(y.groups))


def requested_pairs(methods: list[Method], request: CompareRequest) -> list[tuple[Method, Method, str]]:
    """(X, Y, key) with X at KEY=A, Y at KEY=B, all else equal, on a shared env; ConfigError if none."""
    known = sorted({key for method in methods for key in method.values})
    if request.key not in known:
        raise ConfigError(f"--compare {request.key}=...: {request.key} does not tell these runs apart; "
                          f"use one of {', '.join(known)}")
    seen = sorted({method.values[request.key] for method in methods})
    for value in (request.first, request.second):
        if value not in seen:
            raise ConfigError(f"--compare {request.key}={request.first},{request.second}: no run has "
                              f"{request.key}={value}; values: {', '.join(seen)}")
    pairs = [(x, y, request.key) for x in methods for y in methods
             if x.values[request.key] == request.first and y.values[request.key] == request.second
             and _differing_key(x, y) == request.key and _shared_envs(x, y)]
    if not pairs:
        raise ConfigError(f"--compare {request.key}={request.first},{request.second}: no two groups on "
                          f"one env differ only in {request.key}")
    return pairs


def single_key_pairs(methods: list[Method]) -> list[tuple[Method, Method, str]]:
    """Every (X, Y, key), X before Y in label order, that differs in one key on a shared env."""
    return [(x, y, key) for x, y in itertools.combinations(methods, 2)
            if (key := _differing_key(x, y)) is not None and _shared_envs(x, y)]


def compare(pairs: list[tuple[Method, Method, str]], resamples: int, seed: int) -> list[Comparison]:
    """P(X > Y) and its CI for each pair, on the envs both ran."""
    found = []
    for x, y, key in pairs:
        envs = _shared_envs(x, y)
        scores_x, scores_y = x.finals(envs), y.finals(envs)
        probability, low, high = improvement(scores_x, scores_y, resamples, seed)
        if min(scores_x.shape[0], scores_y.shape[0]) < MIN_RUNS_FOR_IQM:
            low = high = math.nan  # a bootstrap over so few runs is no more than their spread
        found.append(Comparison(x, y, key, envs, (scores_x.shape[0], scores_y.shape[0]), probability,
                                (low, high)))
    return found


# ----- outputs ------------------------------------------------------------------------------
def plot_profiles(
    methods: list[Method], norms: dict[str, Normalisation | None], path: Path, resamples: int, seed: int
) -> None:
    """One PNG: each method's performance profile over its runs and normalised envs, CI bands."""
    from matplotlib.figure import Figure  # Agg canvas, no display or pyplot state
    from rliable import plot_utils

    scored = {method.label: normalised_scores(method, norms)[1] for method in methods}
    scored = {label: scores for label, scores in scored.items() if scores.size}
    everything = np.concatenate([scores.ravel() for scores in scored.values()])
    thresholds = np.linspace(min(0.0, everything.min()), max(1.0, everything.max()), PROFILE_THRESHOLDS)
    profiles, bands = {}, {}
    for label, scores in scored.items():
        profile, low, high = performance_profile(scores, thresholds, resamples, seed)
        profiles[label], bands[label] = profile, (low, high)
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    axes = figure.subplots()
    plot_utils.plot_performance_profiles(
        profiles, thresholds, performance_profile_cis=bands, ax=axes,
        xlabel=r"normalised final return $\tau$", ylabel=r"fraction of runs above $\tau$",
        labelsize="medium", ticklabelsize="small",
    )
    axes.set_title(f"performance profiles ({CONFIDENCE:.0%} stratified bootstrap CI bands)")
    add_legend(figure, axes)
    figure.savefig(path, dpi=120)


def _ci(point: float, ci: tuple[float, float], digits: int) -> str:
    if math.isnan(point):
        return f"- (below {MIN_RUNS_FOR_IQM} runs)"
    if math.isnan(ci[0]):
        return f"{point:.{digits}f} (no CI below {MIN_RUNS_FOR_IQM} runs per env)"
    return f"{point:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def normalisation_rows(envs: list[str], norms: dict[str, Normalisation | None]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: how each env was normalised."""
    header = ["env", "normalisation", "0 (low anchor)", "1 (high anchor)"]
    rows = []
    for env in envs:
        norm = norms.get(env)
        rows.append([env, "not normalised: every run scored the same", "-", "-"] if norm is None
                    else [env, norm.kind, norm.low_source, norm.high_source])
    return header, rows


def aggregate_rows(found: list[Aggregate]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the aggregate table."""
    header = ["algo", "envs", "runs per env", "normalised IQM [95% CI]",
              f"normalised mean [95% CI; below {MIN_RUNS_FOR_IQM} runs, min, max]"]
    rows = [[agg.method.label, ", ".join(agg.envs), str(agg.runs), _ci(agg.iqm, agg.iqm_ci, 3),
             _ci(agg.mean, agg.mean_ci, 3)] for agg in found]
    return header, rows


def comparison_rows(found: list[Comparison]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the probability-of-improvement table."""
    header = ["X", "Y", "differs in", "envs", "runs per env (X, Y)", "P(X > Y) [95% CI]"]
    rows = [[c.x.label, c.y.label, c.key, ", ".join(c.envs), f"{c.runs[0]}, {c.runs[1]}",
             _ci(c.probability, c.ci, 2)] for c in found]
    return header, rows


def markdown(
    envs: list[str], norms: dict[str, Normalisation | None], found: list[Aggregate],
    comparisons: list[Comparison], profile_image: str | None, skipped_pairs: int,
) -> list[str]:
    """The report.md sections on normalisation, aggregates, profiles and comparisons."""
    lines = [
        "## Normalised scores", "",
        ("Each env's final returns are normalised as (return - low) / (high - low): low is the "
         "return of a uniform-random policy (`rlrun/results/reference/random.csv`), or the worst final "
         "return of these runs where none was measured; high is the highest published mean for "
         "the env in the reference CSV (any algorithm, budget and measure), or the best final "
         "return of these runs where there is none."), "",
        *_table(*normalisation_rows(envs, norms)), "",
        "## Aggregate over envs", "",
        ("IQM and mean of the normalised final returns over each algorithm's runs and envs, with "
         f"{CONFIDENCE:.0%} stratified bootstrap CIs (runs resampled within each env; rliable); "
         f"below {MIN_RUNS_FOR_IQM} runs in all, where the IQM drops no run, the mean with the "
         f"lowest and highest normalised return; P(X > Y) has no CI below {MIN_RUNS_FOR_IQM} runs "
         "per env. "
         "An algorithm with more runs on one env than another uses its lowest seeds, as many on "
         "each env as the env with the fewest. Rows compare only where their envs are the same."), "",
        *(_table(*aggregate_rows(found)) if found else ["(no env could be normalised)"]), "",
    ]
    if profile_image is not None:
        lines += [("Performance profiles: the fraction of runs whose normalised final return exceeds "
                   "each threshold (all envs of an algorithm pooled), with CI bands."), "",
                  f"![performance profiles]({profile_image})", ""]
    lines += [
        "## Probability of improvement", "",
        ("P(X > Y): the probability that a run of X ends above a run of Y on the same env "
         "(Mann-Whitney U / (runs of X × runs of Y), 0.5 for identical samples), averaged over the "
         f"envs both ran, with its {CONFIDENCE:.0%} bootstrap CI (X and Y resampled "
         "independently; rliable). 0.5 is a tie."), "",
    ]
    if comparisons:
        lines += [*_table(*comparison_rows(comparisons)), ""]
    elif skipped_pairs:
        lines += [(f"({skipped_pairs} pairs differ in one key, more than {AUTO_COMPARISONS}: name "
                   "the ones to compare with `--compare KEY=A,B`, e.g. `--compare algo=ppo,a2c`.)"), ""]
    else:
        lines += ["(no two groups on one env differ in exactly one key)", ""]
    return lines
