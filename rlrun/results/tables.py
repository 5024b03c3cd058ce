"""The tables and files of a report (`rlrun.results.report`): the groups' rows, the published figures
beside them, report.md's text, runs.csv and curves.csv.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from rlrun.results.reference_compare import compare
from rlrun.results.references import Reference, matching
from rlrun.results.runs import Group, RunRecord, info_keys
from rlrun.results.score_normalisation import Normalisation
from rlrun.results.statistics import CONFIDENCE, MIN_RUNS_FOR_IQM

CURVES_TRAIN_STEPS = 200
"""Most training-log steps per run in curves.csv (count), evenly spread over the run."""


def _published(ref: Reference) -> str:
    """`2382.86 ± 271.74 at 1,000,000`, with `of 3,000,000` when read before the run's end."""
    spread = f" ± {ref.spread:g}" if ref.spread is not None else ""
    at = f" at {ref.steps:,}" if ref.steps else ""
    within = f" of {ref.budget:,}" if ref.steps and ref.budget and ref.budget != ref.steps else ""
    return f"{ref.mean:g}{spread}{at}{within}"


def reference_rows(
    groups: list[Group], references: list[Reference], resamples: int, seed: int
) -> tuple[list[str], list[list[str]]]:
    """Each group beside every published figure of its env and algorithm, compared by the figure's
    own measure (`rlrun.results.reference_compare.compare`): header and rows."""
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


def group_rows(groups: list[Group], keys: list[str]) -> tuple[list[str], list[list[str]]]:
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


def report_markdown(
    groups: list[Group], keys: list[str], images: dict[str, str], resamples: int, seed: int,
    published: tuple[list[str], list[list[str]]] | None, across: list[str],
) -> str:
    header, rows = group_rows(groups, keys)
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


def write_runs_csv(
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


def write_curves_csv(runs: list[RunRecord], keys: list[str], path: Path) -> None:
    """Each run's evaluation and training-return curves (`curve_points`), runs in run_dir order."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*_run_header(keys), "step", "eval_return", "train_return"])
        for run in sorted(runs, key=lambda run: str(run.path)):
            writer.writerows([*_run_columns(run, keys), *point] for point in curve_points(run))
