"""Results a researcher can look at: a table, learning curves with confidence intervals, report.md.

`rlrun-report PATH...` finds every run dir under the PATHs (a dir holding `metrics.jsonl`,
`.hydra/config.yaml` and `.hydra/overrides.yaml`), reads the numbers from `metrics.jsonl` only
and groups the runs by env, algorithm and every command-line override whose value differs
across runs; seeds are the replicates. Overrides that do not change what is learned (seed,
hydra.*, resume, device, torch_threads, logger, checkpoint.*) never group.

Statistics, by rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice";
`rlrun/results/statistics.py`):

- the final return of a run is its last `eval/return_mean` event; its final info means (e.g. a
  success rate) are the `eval/<key>` values of that evaluation, for the keys of its
  `logger.info_keys`, and a group's is their mean over the runs that logged it;
- a group's final returns: from 5 runs (`rlrun.results.statistics.MIN_RUNS_FOR_IQM`) the IQM, the
  interquartile mean (the mean of the runs left after dropping the floor(n/4) lowest and the
  floor(n/4) highest: rliable's aggregate_iqm, scipy.stats.trim_mean(x, 0.25)), with its 95%
  confidence interval, rliable's stratified percentile bootstrap over runs
  (`get_interval_estimates`), `RESAMPLES` resamples seeded with `--seed` for each interval
  alone (a group's interval does not depend on which other runs are in the report; each group
  is one task, so the stratified bootstrap is a bootstrap over its runs). Below 5 runs the IQM
  drops no run and a bootstrap only spans them, so the mean and [min, max] are given instead,
  labelled so (`rlrun.results.statistics.summary`);
- learning curves: each run's `eval/return_mean` events are interpolated linearly onto the
  group's grid (the union of its runs' evaluation steps within the step range all of them
  cover), then the same statistic is taken at every grid step (the IQM's bootstrap resamples
  whole runs); beside it, dashed, the mean over runs of their `rollout/ep_return_mean` (the
  training episodes), so that a run shorter than `eval.every_steps` still draws a curve;
- published figures (`--reference`): each compared with rlrun's figure by the same measure at
  the same step (`rlrun.results.reference_compare.compare`);
- across envs (`rlrun/results/aggregate.py`, `rlrun/results/score_normalisation.py`): final returns normalised per env
  by a random-policy score and the best published one, IQM and mean of the normalised scores
  with stratified bootstrap CIs, performance profiles, and the probability of improvement of
  one algorithm or override value over another.

Outputs in the `--out` dir: `report.md` (the tables and the plots), one `<env>.png` per env
with the groups overlaid, `performance_profile.png`, `runs.csv` (one row per run) and `curves.csv`
(each run's evaluation and training-return curves, `curve_points`). A sweep dir
of rlrun's Optuna sweeper adds its study (`rlrun.search.study_report`): trials by state, best trial,
parameter importances, `optimization_history.png` and `intermediate_values.png`.

Here the report is put together (`write_report`); the runs are read and grouped in
`rlrun.results.runs`, the curves drawn in `rlrun.results.curves`, the tables, report.md and the
CSVs written in `rlrun.results.tables`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlrun.config import ConfigError
from rlrun.results import aggregate
from rlrun.results.curves import (
    image_name,
    learning_curve,
    plot_env,
    plotted_references,
    training_curve,
)
from rlrun.results.references import Reference, load_random_scores, load_references
from rlrun.results.runs import Group, RunRecord, find_run_dirs, grouping_keys, read_run, summarize
from rlrun.results.score_normalisation import normalisation
from rlrun.results.statistics import IQM_LABEL, MEAN_LABEL, MIN_RUNS_FOR_IQM, RESAMPLES
from rlrun.results.tables import (
    CURVES_TRAIN_STEPS,
    group_rows,
    reference_rows,
    report_markdown,
    write_curves_csv,
    write_runs_csv,
)
from rlrun.results.terminal import table_console
from rlrun.search import RESULTS_FILE
from rlrun.search.study_report import study_section

__all__ = ["CURVES_TRAIN_STEPS", "Group", "RunRecord", "find_run_dirs", "learning_curve", "plotted_references",
           "read_run", "training_curve", "write_report"]

PROFILE_IMAGE = "performance_profile.png"
"""The performance-profile figure's file name in the `--out` dir."""


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
    requests for the probability of improvement (see `rlrun.results.aggregate`).

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
    _print_table(console, title, *group_rows(groups, keys), left=2 + len(keys))
    published = None if references is None else reference_rows(groups, references, resamples, seed)
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
        images[env] = image_name(env)
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
    markdown = report_markdown(groups, keys, images, resamples, seed, published, across)
    (out / "report.md").write_text("\n".join([markdown, *(study.markdown for study in studies)]))
    write_runs_csv(groups, keys, norms, out / "runs.csv")
    write_curves_csv(runs, keys, out / "curves.csv")
    plots = len(images) + (profile_image is not None)
    console.print(f"wrote {out / 'report.md'}, {plots} plot(s), runs.csv and curves.csv",
                  markup=False, soft_wrap=True)
    return groups
