"""Results a researcher can look at: a table, learning curves with confidence intervals, report.md.

`rlrun-report PATH...` finds every run dir under the PATHs (a dir holding `metrics.jsonl`,
`.hydra/config.yaml` and `.hydra/overrides.yaml`), reads the numbers from `metrics.jsonl` only
and groups the runs by env, algorithm and every command-line override whose value differs
across runs; seeds are the replicates. Overrides that do not change what is learned (seed,
hydra.*, resume, device, torch_threads, logger, checkpoint.*) never group.

Statistics, by rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice";
`rlrun/stats.py`):

- the final return of a run is its last `eval/return_mean` event; its final info means (e.g. a
  success rate) are the `eval/<key>` values of that evaluation, for the keys of its
  `logger.info_keys`, and a group's is their mean over the runs that logged it;
- a group's final returns: from 5 runs (`rlrun.stats.MIN_RUNS_FOR_IQM`) the IQM, the
  interquartile mean (the mean of the runs left after dropping the floor(n/4) lowest and the
  floor(n/4) highest: rliable's aggregate_iqm, scipy.stats.trim_mean(x, 0.25)), with its 95%
  confidence interval, rliable's stratified percentile bootstrap over runs
  (`get_interval_estimates`), `RESAMPLES` resamples seeded with `--seed` for each interval
  alone (a group's interval does not depend on which other runs are in the report; each group
  is one task, so the stratified bootstrap is a bootstrap over its runs). Below 5 runs the IQM
  drops no run and a bootstrap only spans them, so the mean and [min, max] are given instead,
  labelled so (`rlrun.stats.summary`);
- learning curves: each run's `eval/return_mean` events are interpolated linearly onto the
  group's grid (the union of its runs' evaluation steps within the step range all of them
  cover), then the same statistic is taken at every grid step (the IQM's bootstrap resamples
  whole runs); beside it, dashed, the mean over runs of their `rollout/ep_return_mean` (the
  training episodes), so that a run shorter than `eval.every_steps` still draws a curve;
- published figures (`--reference`): each compared with rlrun's figure by the same measure at
  the same step (`rlrun.references.compare`);
- across envs (`rlrun/aggregate.py`, `rlrun/normalisation.py`): final returns normalised per env
  by a random-policy score and the best published one, IQM and mean of the normalised scores
  with stratified bootstrap CIs, performance profiles, and the probability of improvement of
  one algorithm or override value over another.

Outputs in the `--out` dir: `report.md` (the tables and the plots), one `<env>.png` per env
with the groups overlaid, `performance_profile.png`, `runs.csv` (one row per run) and `curves.csv`
(each run's evaluation and training-return curves, `curve_points`). A sweep dir
of rlrun's Optuna sweeper adds its study (`rlrun.search.report`): trials by state, best trial,
parameter importances, `optimization_history.png` and `intermediate_values.png`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlrun import aggregate
from rlrun.config import ConfigError
from rlrun.normalisation import Normalisation, normalisation
from rlrun.plot_legend import add_legend
from rlrun.references import Reference, compare, load_random_scores, load_references, matching
from rlrun.search import RESULTS_FILE
from rlrun.search.report import study_section
from rlrun.stats import (
    CONFIDENCE,
    IQM_LABEL,
    MEAN_LABEL,
    MIN_RUNS_FOR_IQM,
    RESAMPLES,
    Summary,
    summary,
    summary_per_step,
)
from rlrun.terminal import table_console

PROFILE_IMAGE = "performance_profile.png"
"""The performance-profile figure's file name in the `--out` dir."""
PLOTTED_BUDGET_RATIO = 2.0
"""Published figures at more than this multiple of a group's last step are left off its plot
(they stay in the table), so that the curves keep their scale."""
MAX_CURVE_POINTS = 200
"""Most grid steps of a learning curve (count); a denser union of eval steps is thinned evenly."""
CURVES_TRAIN_STEPS = 200
"""Most training-log steps per run in curves.csv (count), evenly spread over the run."""
NOT_GROUPING = ("seed", "resume", "device", "torch_threads", "logger", "checkpoint", "bench")
"""Override keys (and key prefixes before a dot or slash) that never make a group; a suite's
`bench/<suite>` case names the algo and env, which group anyway."""

# ----- reading runs -------------------------------------------------------------------------
@dataclass
class RunRecord:
    """The numbers of one run dir."""

    path: Path
    """The run dir."""
    algo: str
    """Algorithm name (config `algo.name`)."""
    env: str
    """Gymnasium id (config `env.id`)."""
    seed: int
    """Config `seed`."""
    overrides: dict[str, str]
    """Command-line overrides (`key=value` of .hydra/overrides.yaml)."""
    config: dict
    """The composed config (.hydra/config.yaml): the values of the grouping keys."""
    eval_steps: np.ndarray
    """Env steps of the evaluations (increasing)."""
    eval_returns: np.ndarray
    """`eval/return_mean` at those steps (raw return)."""
    steps: int
    """Largest env step in metrics.jsonl."""
    wall: float
    """Wall time at the last metrics event, summed over resumed segments (s)."""
    sps: float
    """Last `time/sps` (env steps per second of the last training segment); nan if none."""
    train_steps: np.ndarray
    """Env steps at which `rollout/ep_return_mean` was logged (increasing)."""
    train_returns: np.ndarray
    """`rollout/ep_return_mean` at those steps (raw return of the last training episodes)."""
    final_infos: dict[str, float] = field(default_factory=dict)
    """{info key of `logger.info_keys`: its `eval/<key>` mean in the last evaluation}, for the keys
    that evaluation logged."""

    @property
    def final_return(self) -> float:
        """The last `eval/return_mean`."""
        return float(self.eval_returns[-1])

    @property
    def train_return(self) -> float:
        """The last `rollout/ep_return_mean`; nan if none."""
        return float(self.train_returns[-1]) if len(self.train_returns) else math.nan

    def value(self, key: str) -> str:
        """The value of `key` in this run: the composed config's, or the override of a group choice."""
        found = OmegaConf.select(OmegaConf.create(self.config), key, default=None)
        if found is not None and not OmegaConf.is_config(found):
            return str(found)
        return self.overrides.get(key, "default")


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run dirs at or under `paths`: dirs that hold metrics.jsonl and .hydra/{config,overrides}.yaml."""
    found: set[Path] = set()
    for path in paths:
        if not Path(path).is_dir():
            raise ConfigError(f"{path} is not a directory; pass run dirs or dirs that hold them")
        for metrics in Path(path).rglob("metrics.jsonl"):
            run_dir = metrics.parent
            if all((run_dir / ".hydra" / name).is_file() for name in ("config.yaml", "overrides.yaml")):
                found.add(run_dir.resolve())
    return sorted(found)


def parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """`key=value` override strings as a dict (`+`, `++` and `~` prefixes dropped)."""
    parsed = {}
    for line in lines:
        key, equals, value = str(line).partition("=")
        parsed[key.lstrip("+~")] = value if equals else "<deleted>"
    return parsed


def read_run(run_dir: Path) -> RunRecord | None:
    """The numbers of one run dir; None when its metrics.jsonl has no evaluation yet."""
    config = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=False)
    overrides = parse_overrides(OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")))
    evals: dict[int, float] = {}
    trains: dict[int, float] = {}
    eval_infos: dict[int, dict[str, float]] = {}
    info_keys = (config.get("logger") or {}).get("info_keys") or []
    steps, wall, sps = 0, 0.0, math.nan
    with (run_dir / "metrics.jsonl").open() as lines:
        for line in lines:
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash mid-write
            steps = max(steps, step)
            wall = float(record.get("time", wall))
            sps = float(record.get("time/sps", sps))
            for key, series in (("eval/return_mean", evals), ("rollout/ep_return_mean", trains)):
                if key in record:
                    series[step] = float(record[key])  # the later of two at one step wins
            if "eval/return_mean" in record:
                eval_infos[step] = {key: float(record[f"eval/{key}"]) for key in info_keys
                                    if f"eval/{key}" in record}
    if not evals:
        return None
    eval_steps, train_steps = np.array(sorted(evals)), np.array(sorted(trains), dtype=int)
    return RunRecord(
        path=run_dir, algo=str(config["algo"]["name"]), env=str(config["env"]["id"]),
        seed=int(config.get("seed", 0)), overrides=overrides, config=config, eval_steps=eval_steps,
        eval_returns=np.array([evals[s] for s in eval_steps]), steps=steps, wall=wall, sps=sps,
        train_steps=train_steps,
        train_returns=np.array([trains[s] for s in train_steps], dtype=float),
        final_infos=eval_infos[int(eval_steps[-1])],
    )


def grouping_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys whose value differs across runs (besides algo and env, which always group)."""
    keys = sorted(set().union(*(run.overrides for run in runs)) - {"algo", "env"})
    keys = [key for key in keys
            if re.split(r"[./]", key)[0] not in NOT_GROUPING and not key.startswith("hydra")]
    return [key for key in keys if len({run.value(key) for run in runs}) > 1]


# ----- aggregation --------------------------------------------------------------------------
@dataclass
class Group:
    """The runs of one (env, algo, varying overrides) and their summary."""

    env: str
    """Gymnasium id."""
    algo: str
    """Algorithm name."""
    setting: tuple[tuple[str, str], ...]
    """(key, value) of each grouping override."""
    runs: list[RunRecord]
    """The replicates (one per seed)."""
    mean: float
    """Mean final return over runs."""
    final: Summary
    """`rlrun.stats.summary` of the final returns: IQM and CI, or mean and range below 5 runs."""
    final_infos: dict[str, float] = field(default_factory=dict)
    """{info key: mean over the runs that logged it of their final `eval/<key>`}."""

    @property
    def label(self) -> str:
        return " ".join([self.algo, *(f"{key}={value}" for key, value in self.setting)])

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]


def summarize(runs: list[RunRecord], keys: list[str], resamples: int, seed: int) -> list[Group]:
    """One Group per (env, algo, values of `keys`), sorted by env then label."""
    buckets: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        setting = tuple((key, run.value(key)) for key in keys)
        buckets.setdefault((run.env, run.algo, setting), []).append(run)
    groups = []
    for (env, algo, setting), members in sorted(buckets.items()):
        finals = [run.final_return for run in members]
        infos = {key: float(np.mean([run.final_infos[key] for run in members
                                     if key in run.final_infos]))
                 for key in info_keys(members)}
        groups.append(Group(env, algo, setting, members, float(np.mean(finals)),
                            summary(finals, resamples, seed), infos))
    return groups


def info_keys(runs: list[RunRecord]) -> list[str]:
    """The info keys whose final `eval/<key>` one of `runs` logged, in order of appearance."""
    return list(dict.fromkeys(key for run in runs for key in run.final_infos))


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
    IQM and CI, or mean and range below 5 runs (`rlrun.stats.summary_per_step`)."""
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


# ----- outputs ------------------------------------------------------------------------------
def _file_name(env: str) -> str:
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


def _published(ref: Reference) -> str:
    """`2382.86 ± 271.74 at 1,000,000`, with `of 3,000,000` when read before the run's end."""
    spread = f" ± {ref.spread:g}" if ref.spread is not None else ""
    at = f" at {ref.steps:,}" if ref.steps else ""
    within = f" of {ref.budget:,}" if ref.steps and ref.budget and ref.budget != ref.steps else ""
    return f"{ref.mean:g}{spread}{at}{within}"


def _reference_rows(
    groups: list[Group], references: list[Reference], resamples: int, seed: int
) -> tuple[list[str], list[list[str]]]:
    """Each group beside every published figure of its env and algorithm, compared by the figure's
    own measure (`rlrun.references.compare`): header and rows."""
    header = ["env", "algo", "runs", "published", "measure_kind", "seeds", "source", "measure",
              "rlrun, same measure", "rlrun / published", "differs"]
    rows = []
    for group in groups:
        for ref in matching(references, group.env, group.algo):
            found = compare(ref, group.runs, resamples, seed)
            rows.append([
                group.env, group.label, str(len(group.runs)), _published(ref), ref.measure_kind,
                str(ref.seeds or "not stated"), f"{ref.source} ({ref.source_file})", ref.measure,
                found.ours.text if found.ours else "-", found.ratio,
                "; ".join(found.differs) or "-",
            ])
    return header, rows


def _rows(groups: list[Group], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Table header and rows shared by the console table and report.md."""
    infos = info_keys([run for group in groups for run in group.runs])
    header = ["env", "algo", *keys, "runs", "mean", "statistic", "final return",
              *(f"eval/{key}" for key in infos), "steps", "wall (s)", "SPS"]
    rows = []
    for group in groups:
        values = dict(group.setting)
        rows.append([
            group.env, group.algo, *(values[key] for key in keys), str(len(group.runs)),
            f"{group.mean:.2f}", group.final.label, group.final.text(2),
            *(f"{group.final_infos[key]:.3g}" if key in group.final_infos else "-"
              for key in infos),
            f"{np.mean([run.steps for run in group.runs]):.0f}",
            f"{np.mean([run.wall for run in group.runs]):.1f}",
            f"{np.mean([run.sps for run in group.runs]):.0f}",
        ])
    return header, rows


INFO_NOTE = (" `eval/<key>` (a key of `logger.info_keys`; `is_success`: the success rate): its "
             "mean over the episodes of each run's last evaluation, averaged over the runs that "
             "logged it.")
"""What report.md says of the final-info columns, when there are some."""


def _markdown(
    groups: list[Group], keys: list[str], images: dict[str, str], resamples: int, seed: int,
    published: tuple[list[str], list[list[str]]] | None, across: list[str],
) -> str:
    header, rows = _rows(groups, keys)
    info_note = INFO_NOTE if any(group.final_infos for group in groups) else ""
    compared = []
    if published is not None:
        ref_header, ref_rows = published
        compared = [
            "## Published figures", "",
            ("Each group beside the published figures of its env and algorithm, by each figure's "
             "own measure (`measure_kind`) read at the figure's step: `train_window`, the runs' "
             "last `rollout/ep_return_mean` logged at or before it; `eval_agent_*` and "
             "`eval_seeds_*`, their last evaluation at or before it; `max_seed_mean_*`, the "
             "highest mean over seeds of the evaluations up to it; `auc`, each run's mean of its "
             "logged training returns up to it. Per-run measures are summarised as in the table "
             "above. The ratio is rlrun's figure over the published one (for negative returns, "
             "the difference). `differs` names what still differs (env version, run length, "
             "seeds, evaluation policy, window), or why there is no figure (an rllab task, a step "
             "the runs did not reach, Atari training returns, which rlrun logs per life)."), "",
            "| " + " | ".join(ref_header) + " |", "|" + "|".join("---" for _ in ref_header) + "|",
            *("| " + " | ".join(row) + " |" for row in ref_rows),
            *([] if ref_rows else ["", "(no published figure for these envs and algorithms)"]), "",
        ]
    lines = [
        "# rlrun report", "",
        (f"{sum(len(g.runs) for g in groups)} runs in {len(groups)} groups"
        f" (grouped by env, algo{''.join(', ' + key for key in keys)}; seeds are the replicates)."), "",
        (f"Final return: the last `eval/return_mean` of each run, summarised by the statistic "
         f"its group size allows: from {MIN_RUNS_FOR_IQM} runs the IQM (mean of the middle 50% of "
         f"runs) with its {CONFIDENCE:.0%} CI (rliable's stratified percentile bootstrap over "
         f"runs, {resamples} resamples, seed {seed}); below {MIN_RUNS_FOR_IQM} runs, where the "
         f"IQM drops no run and a bootstrap only spans the runs, the mean and [min, max].{info_note} "
         "Mean, steps, wall time and SPS: means over runs."), "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 2 + len(keys) else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows), "",
        *compared,
        *across,
        "## Learning curves", "",
        (f"The evaluation return over seeds at each evaluation step: IQM with its bootstrap CI "
         f"band from {MIN_RUNS_FOR_IQM} runs, else mean with a [min, max] band (the legend says "
         "which); dashed, the mean training-episode return (`rollout/ep_return_mean`) of the "
         "runs that logged one")
        + (" (markers: published figures at the step they are read at, up to twice the runs' last "
           "step; figures without a step are only in the table)." if published is not None
           else "."), "",
        *(f"![{env}]({name})\n" for env, name in images.items()),
        "## Runs", "",
        *(f"- {g.label} on {g.env}: seeds {', '.join(map(str, g.seeds))} — "
          + ", ".join(f"`{run.path}`" for run in g.runs) for g in groups),
        "",
    ]
    return "\n".join(lines)


def _run_header(keys: list[str]) -> list[str]:
    """The columns that name a run in runs.csv and curves.csv."""
    return ["run_dir", "env", "algo", *keys, "seed"]


def _run_columns(run: RunRecord, keys: list[str]) -> list:
    return [run.path, run.env, run.algo, *(run.value(key) for key in keys), run.seed]


def _blank_nan(value: float) -> float | str:
    return value if math.isfinite(value) else ""


def _write_runs_csv(
    groups: list[Group], keys: list[str], norms: dict[str, Normalisation | None], path: Path
) -> None:
    """One row per run; `final_train_return` is empty for a run that logged no training return,
    `normalised_return` for an env that is not normalised, and `eval/<key>` (the last
    evaluation's info mean) for a run that did not log it."""
    infos = info_keys([run for group in groups for run in group.runs])
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*_run_header(keys), "final_return", "final_train_return", "steps",
                         "wall_s", "sps", "normalised_return", *(f"eval/{key}" for key in infos)])
        for group in groups:
            norm = norms[group.env]
            for run in group.runs:
                writer.writerow([*_run_columns(run, keys), run.final_return,
                                 _blank_nan(run.train_return), run.steps, run.wall, run.sps,
                                 "" if norm is None else float(norm(run.final_return)),
                                 *(run.final_infos.get(key, "") for key in infos)])


def curve_points(run: RunRecord) -> list[tuple[int, float | str, float | str]]:
    """(step, eval_return, train_return) of one run for curves.csv, by step: every evaluation step,
    at most `CURVES_TRAIN_STEPS` of its training-log steps evenly spread over the run, and its last
    logged step. eval_return is the evaluation at the step ('' elsewhere), train_return the last
    `rollout/ep_return_mean` logged at or before it ('' before the first)."""
    spread = np.linspace(0, len(run.train_steps) - 1, CURVES_TRAIN_STEPS).round().astype(int)
    trained = run.train_steps[np.unique(spread)] if len(run.train_steps) else []
    steps = np.unique(np.concatenate([run.eval_steps, trained, [run.steps]]).astype(int))
    evals = dict(zip(run.eval_steps.tolist(), run.eval_returns.tolist()))
    last = np.searchsorted(run.train_steps, steps, side="right") - 1
    return [(int(step), evals.get(int(step), ""), float(run.train_returns[i]) if i >= 0 else "")
            for step, i in zip(steps, last)]


def _write_curves_csv(runs: list[RunRecord], keys: list[str], path: Path) -> None:
    """Each run's evaluation and training-return curves (`curve_points`), runs in run_dir order."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*_run_header(keys), "step", "eval_return", "train_return"])
        for run in sorted(runs, key=lambda run: str(run.path)):
            writer.writerows([*_run_columns(run, keys), *point] for point in curve_points(run))


def _print_table(console: Console, title: str, header: list[str], rows: list[list[str]], left: int) -> None:
    """A rich table whose first `left` columns are left-aligned and the rest right-aligned; text in
    brackets ([min, max]) is shown, not read as markup."""
    table = Table(title=escape(title))
    for i, column in enumerate(header):
        table.add_column(escape(column), justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*map(escape, row))
    console.print(table)


def _comparison_pairs(
    methods: list[aggregate.Method], requests: list[aggregate.CompareRequest]
) -> tuple[list[tuple], int]:
    """The pairs to compare (those asked for, else every single-key pair up to AUTO_COMPARISONS)
    and the number of single-key pairs left out."""
    if requests:
        pairs = [pair for request in requests for pair in aggregate.requested_pairs(methods, request)]
        return list({(x.label, y.label): (x, y, key) for x, y, key in pairs}.values()), 0
    pairs = aggregate.single_key_pairs(methods)
    return (pairs, 0) if len(pairs) <= aggregate.AUTO_COMPARISONS else ([], len(pairs))


def write_report(
    paths: list[Path], out: Path, resamples: int = RESAMPLES, seed: int = 0,
    references: list[Reference] | None = None, compare: list[str] | None = None,
) -> list[Group]:
    """Read the runs under `paths`; print the tables; write report.md, PNGs and runs.csv to `out`.

    With `references`, the groups are also set beside the published figures of their env and
    algorithm (a table, and markers on the curves); the normalisation takes its high anchors
    from them, or from rlrun's shipped reference CSV without them. `compare` holds `KEY=A,B`
    requests for the probability of improvement (see `rlrun.aggregate`).

    Raises:
        ConfigError: a path is not a dir, no run dir with an evaluation is found, resamples < 1,
            or a `compare` request is malformed or matches no pair of groups.
    """
    if resamples < 1:
        raise ConfigError(f"--resamples={resamples} must be >= 1; e.g. --resamples {RESAMPLES}")
    requests = [aggregate.parse_compare(text) for text in compare or []]
    console = table_console()
    run_dirs = find_run_dirs(paths)
    runs = []
    for run_dir in run_dirs:
        run = read_run(run_dir)
        if run is None:
            console.print(f"skipped {run_dir}: no eval/return_mean in its metrics.jsonl yet",
                          markup=False, soft_wrap=True)
        else:
            runs.append(run)
    if not runs:
        raise ConfigError(
            f"no run dirs with evaluations under {', '.join(map(str, paths))}; a run dir holds "
            "metrics.jsonl and .hydra/config.yaml (every rlrun training run writes them)"
        )
    keys = grouping_keys(runs)
    groups = summarize(runs, keys, resamples, seed)
    methods = aggregate.methods_of(groups)
    pairs, skipped_pairs = _comparison_pairs(methods, requests)  # refuses bad requests before writing
    for group in groups:
        if len(set(group.seeds)) < len(group.seeds):
            console.print(f"note: {group.label} on {group.env} has runs with the same seed: {group.seeds}",
                          markup=False, soft_wrap=True)
    envs = sorted({group.env for group in groups})
    randoms, anchors = load_random_scores(), references if references is not None else load_references()
    norms = {env: normalisation(env, np.array([run.final_return for g in groups if g.env == env for run in g.runs]),
                                randoms, anchors) for env in envs}
    aggregates = aggregate.aggregates(methods, norms, resamples, seed)
    comparisons = aggregate.compare(pairs, resamples, seed)

    title = (f"{len(runs)} runs, {len(groups)} groups (final eval return: {IQM_LABEL} from "
             f"{MIN_RUNS_FOR_IQM} runs, else {MEAN_LABEL})")
    _print_table(console, title, *_rows(groups, keys), left=2 + len(keys))
    published = None if references is None else _reference_rows(groups, references, resamples, seed)
    if published is not None:
        ref_header, ref_rows = published
        shown = ["env", "algo", "published", "source", "measure_kind", "rlrun, same measure",
                 "rlrun / published", "differs"]
        shown_rows = [[row[ref_header.index(column)] for column in shown] for row in ref_rows]
        _print_table(console, "published figures (rlrun's figure by the same measure; all in "
                     "report.md)", shown, shown_rows, left=len(shown))
    if aggregates:
        _print_table(console, "across envs (normalised final return; normalisation in report.md)",
                     *aggregate.aggregate_rows(aggregates), left=3)
    if comparisons:
        _print_table(console, "probability of improvement", *aggregate.comparison_rows(comparisons), left=5)
    elif skipped_pairs:
        console.print(f"{skipped_pairs} pairs of groups differ in one key: name the ones to compare with "
                      "--compare KEY=A,B (e.g. --compare algo=ppo,a2c)", markup=False, soft_wrap=True)

    out.mkdir(parents=True, exist_ok=True)
    images = {}
    for env in envs:
        images[env] = _file_name(env)
        plot_env([group for group in groups if group.env == env], out / images[env], resamples, seed,
                 references)
    profile_image = None
    if aggregates:
        profile_image = PROFILE_IMAGE
        aggregate.plot_profiles(methods, norms, out / profile_image, resamples, seed)
    across = aggregate.markdown(envs, norms, aggregates, comparisons, profile_image, skipped_pairs)
    studies = [study_section(path, out) for path in paths if (path / RESULTS_FILE).is_file()]
    for study in studies:
        console.print(study.headline, markup=False, soft_wrap=True)
    markdown = _markdown(groups, keys, images, resamples, seed, published, across)
    (out / "report.md").write_text("\n".join([markdown, *(study.markdown for study in studies)]))
    _write_runs_csv(groups, keys, norms, out / "runs.csv")
    _write_curves_csv(runs, keys, out / "curves.csv")
    plots = len(images) + (profile_image is not None)
    console.print(f"wrote {out / 'report.md'}, {plots} plot(s), runs.csv and curves.csv",
                  markup=False, soft_wrap=True)
    return groups
