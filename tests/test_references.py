"""Published reference scores: the shipped CSV, and reports that compare runs with them, each
figure by its own measure."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from test_report import write_run, write_run_dir

from rlrun.config import ConfigError
from rlrun.registry import algorithms
from rlrun.results.reference_compare import compare, ratio
from rlrun.results.references import (
    COLUMNS,
    MEASURE_KINDS,
    SCORES,
    Reference,
    load_references,
    matching,
    split_env_id,
)
from rlrun.results.report import plotted_references, read_run, write_report
from rlrun.results.statistics import MEAN_LABEL


def test_the_shipped_scores_load_and_every_row_names_its_source_and_measure():
    references = load_references()
    assert len(references) >= 50
    assert {"CleanRL", "RL Zoo", "Tianshou", "Duan et al. 2016"} <= {ref.source for ref in references}
    for ref in references:
        assert ref.env and ref.measure and ref.source and ref.source_file, ref
        assert ref.algorithm in algorithms(), ref
        assert ref.env_version in ("v0", "v1", "v2", "v3", "v4", "v5", "rllab"), ref
        assert ref.measure_kind in MEASURE_KINDS, ref
        assert ref.budget is None or ref.steps <= ref.budget, ref
        assert (ref.window is not None) <= (ref.measure_kind == "train_window"), ref
    hopper = {(ref.source, ref.algorithm) for ref in references if ref.env == "Hopper"}
    for expected in [("CleanRL", "ppo"), ("CleanRL", "sac"), ("CleanRL", "td3"), ("CleanRL", "ddpg"),
                     ("RL Zoo", "trpo"), ("RL Zoo", "a2c"), ("Tianshou", "npg"), ("Tianshou", "reinforce"),
                     ("Duan et al. 2016", "trpo")]:
        assert expected in hopper, expected


def test_the_shipped_scores_carry_the_measures_their_sources_state():
    references = load_references()
    kinds = Counter((ref.source.split(" (")[0], ref.measure_kind) for ref in references)
    assert set(kinds) == {
        ("CleanRL", "train_window"), ("RL Zoo", "eval_agent_deterministic"),
        ("RL Zoo", "eval_agent_stochastic"), ("Tianshou", "max_seed_mean_deterministic"),
        ("Tianshou", "max_seed_mean_stochastic"), ("TD3 paper", "max_seed_mean_deterministic"),
        ("TD3 paper", "eval_seeds_deterministic"), ("Duan et al. 2016", "auc"),
    }
    on_policy = [ref for ref in references
                 if ref.source == "Tianshou" and ref.measure_kind.endswith("stochastic")]
    assert {ref.algorithm for ref in on_policy} == {"ppo", "trpo", "npg", "a2c", "reinforce"}
    assert all("PGPolicy.forward samples" in ref.measure for ref in on_policy)
    assert {ref.budget for ref in on_policy if ref.steps == 1_000_000} == {3_000_000}  # 1M of 3M
    td3_paper = [ref for ref in references if ref.source.startswith("TD3 paper")]
    assert all(ref.seeds == 10 for ref in td3_paper)
    assert all(ref.spread_kind == "std" for ref in td3_paper if ref.spread is not None)
    ddpg = [ref for ref in td3_paper if "'not used in the paper'" in ref.measure]  # DDPG.py's rows
    assert len(ddpg) == 7 and [ref.mean for ref in ddpg if ref.env == "Walker2d"] == [1843.85]
    curves = [ref for ref in td3_paper if ref.measure_kind == "eval_seeds_deterministic"]
    assert len(curves) == 2 and all("@bc98e62" in ref.measure for ref in curves)
    duan = [ref for ref in references if ref.source == "Duan et al. 2016"]
    assert all((ref.seeds, ref.spread_kind, ref.steps) == (5, "std", None) for ref in duan)
    assert not [ref for ref in duan if ref.env == "InvertedPendulum"]  # a swing-up: matches no env
    assert len([ref for ref in duan if ref.env == "CartPoleSwingUp"]) == 5


@pytest.mark.parametrize("env_id, expected", [("Hopper-v4", ("Hopper", "v4")), ("ALE/Pong-v5", ("Pong", "v5")),
                                              ("BreakoutNoFrameskip-v4", ("Breakout", "v4")),
                                              ("lm", ("lm", ""))])
def test_env_ids_split_into_name_and_version(env_id, expected):
    assert split_env_id(env_id) == expected


def _row(**values):
    row = {"env": "Hopper", "env_version": "v4", "algorithm": "ppo", "steps": "2000",
           "budget": "3000", "mean": "100", "spread": "", "spread_kind": "", "seeds": "3",
           "measure_kind": "train_window", "window": "100", "measure": "m", "source": "Lab",
           "source_file": "lab/README.md"}
    return {**row, **values}


def _write_scores(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return load_references(path)


def _reference(**values):
    row = _row(**values)

    def number(key):
        return int(row[key]) if row[key] else None

    return Reference(row["env"], row["env_version"], "ppo", number("steps"), float(row["mean"]),
                     None, "", number("seeds"), row["measure"], row["source"], row["source_file"],
                     row["measure_kind"], number("window"), number("budget"))


SEEDS = (0, 1, 2)


def _measured_run(run_dir, seed, family="mujoco"):
    """Seed k: training return step/10 + 10k every 250 steps; evaluations every 500 steps peaking at
    1000. Up to step 2000 the measures differ: last training return 200 + 10k, evaluation 700 + 10k,
    best evaluation 2000 + 10k (at 1000), mean training return 112.5 + 10k; at 3000 the run's final
    evaluation is 900 and its final training return 300 + 10k."""
    config = {"algo": {"name": "ppo"}, "env": {"id": "Hopper-v4", "family": family}, "seed": seed,
              "total_timesteps": 3000, "eval": {"deterministic": True},
              "logger": {"return_window": 100}, "optimizer": {"schedule": "linear"}}
    offset = 10.0 * seed
    evals = {500: 1000 + offset, 1000: 2000 + offset, 1500: 500.0, 2000: 700 + offset,
             2500: 800.0, 3000: 900.0}
    records = [{"step": step, "rollout/ep_return_mean": step / 10 + offset}
               for step in range(250, 3001, 250)]
    records += [{"step": step, "eval/return_mean": value} for step, value in evals.items()]
    records.sort(key=lambda record: record["step"])
    write_run_dir(run_dir, config, [f"seed={seed}"], records)


def _runs(tmp_path, family="mujoco"):
    for seed in SEEDS:
        _measured_run(tmp_path / family / f"s{seed}", seed, family)
    return [read_run(tmp_path / family / f"s{seed}") for seed in SEEDS]


@pytest.mark.parametrize("kind, expected", [
    ("train_window", 210.0), ("eval_seeds_deterministic", 710.0), ("eval_agent_stochastic", 710.0),
    ("max_seed_mean_deterministic", 2010.0), ("auc", 122.5),
])
def test_each_measure_is_read_from_the_runs_at_the_figures_step(tmp_path, kind, expected):
    agent = kind.startswith("eval_agent")
    reference = _reference(measure_kind=kind, seeds="1" if agent else "3")
    found = compare(reference, _runs(tmp_path), resamples=100)
    assert found.ours.point == pytest.approx(expected)
    assert found.ratio == f"{expected / 100:.2f}x"
    assert found.ours.text.startswith("max seed mean" if kind.startswith("max") else MEAN_LABEL)
    policy = "stochastic evaluation vs rlrun's deterministic"
    assert (policy in found.differs) == kind.endswith("stochastic")
    assert ("one agent vs rlrun's 3" in found.differs) == agent


def test_what_differs_and_why_a_figure_has_no_ratio(tmp_path):
    runs = _runs(tmp_path)
    other = _reference(env_version="v3", budget="1000000", seeds="10", window="")
    assert compare(other, runs, resamples=100).differs == [
        "their window not stated (rlrun's: 100 episodes)", "v3 vs rlrun's v4",
        "run length 1,000,000 vs rlrun's 3,000 (rlrun's lr anneals over its run)",
        "10 seeds vs rlrun's 3",
    ]
    late = _reference(measure_kind="eval_seeds_deterministic", steps="2400")
    late = compare(late, runs, resamples=100)
    assert late.ours.point == pytest.approx(710.0) and late.differs == ["rlrun read at step 2,000"]
    for values, reason in [({"steps": "5000"}, "3 of 3 runs end before step 5,000 (at 3,000)"),
                           ({"env_version": "rllab", "steps": "", "budget": ""}, "an rllab task"),
                           ({"steps": "", "budget": ""}, "the figure's step is not stated")]:
        found = compare(_reference(**values), runs, resamples=100)
        assert (found.ours, found.ratio) == (None, "n/a"), found
        assert found.differs[0].startswith(reason), found
    atari = _runs(tmp_path, family="atari")
    for kind in ("train_window", "auc"):
        found = compare(_reference(measure_kind=kind), atari)
        assert found.ratio == "n/a" and "clipped sum per life" in found.differs[0]
    evaluation = compare(_reference(measure_kind="eval_agent_stochastic"), atari, resamples=100)
    assert evaluation.ours.point == 710.0  # evaluations play whole games


def test_a_report_compares_each_figure_by_its_own_measure(tmp_path):
    kinds = ["train_window", "eval_seeds_deterministic", "max_seed_mean_stochastic", "auc"]
    references = _write_scores(tmp_path / "scores.csv", [
        *(_row(measure_kind=kind, source=f"Lab {kind}") for kind in kinds),
        _row(env_version="rllab", steps="", budget="", source="Lab rllab", measure_kind="auc"),
        _row(env="Walker2d", source="Lab W"),
    ])
    _runs(tmp_path)
    write_report([tmp_path / "mujoco"], tmp_path / "out", resamples=100, references=references)
    lines = (tmp_path / "out" / "report.md").read_text().splitlines()
    rows = {kind: next(line for line in lines if f"Lab {kind} (" in line)
            for kind in [*kinds, "rllab"]}
    for kind, figure, expected in [("train_window", "210.0 [200.0, 220.0]", "2.10x"),
                                   ("eval_seeds_deterministic", "710.0 [700.0, 720.0]", "7.10x"),
                                   ("max_seed_mean_stochastic", "max seed mean 2010.0", "20.10x"),
                                   ("auc", "122.5 [112.5, 132.5]", "1.23x")]:
        assert figure in rows[kind] and f"| {expected} |" in rows[kind], rows[kind]
    assert "deterministic" in rows["max_seed_mean_stochastic"].split("| 20.10x |")[1]
    assert "| n/a | an rllab task, not a Gymnasium env: no ratio |" in rows["rllab"]
    assert "Lab W" not in "".join(lines)  # no runs on Walker2d


def test_a_report_with_too_few_steps_shows_no_ratio(tmp_path):
    references = _write_scores(tmp_path / "scores.csv",
                               [_row(env="CartPole", env_version="v1", steps="500000")])
    for seed in SEEDS:
        write_run(tmp_path / "runs" / f"s{seed}", "ppo", "CartPole-v1", seed, 300.0,
                  [f"seed={seed}"])
    write_report([tmp_path / "runs"], tmp_path / "out", resamples=100, references=references)
    lines = (tmp_path / "out" / "report.md").read_text().splitlines()
    (row,) = [line for line in lines if "| Lab (" in line]
    assert "| - | n/a | 3 of 3 runs end before step 500,000 (at 3,000): no ratio |" in row
    assert (tmp_path / "out" / "CartPole-v1.png").stat().st_size > 0


def test_matching_and_ratios():
    references = [ref for ref in load_references() if ref.env == "Hopper"]
    assert all(ref.algorithm == "ppo" for ref in matching(references, "Hopper-v5", "ppo"))
    assert {ref.env_version for ref in matching(references, "Hopper-v5", "trpo")} >= {"v3", "rllab"}
    assert ratio(300.0, 100.0) == "3.00x" and ratio(-150.0, -200.0) == "+50.0"


def test_a_malformed_reference_file_is_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text("env,algorithm\nHopper,ppo\n")
    with pytest.raises(ConfigError, match="lacks the columns"):
        load_references(tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match=r"line 3: measure_kind 'final' is not one of train_"):
        _write_scores(tmp_path / "kind.csv", [_row(), _row(measure_kind="final")])
    assert SCORES.name == "scores.csv"


def test_curves_leave_off_figures_far_past_the_runs_budget():
    def reference(steps):
        return Reference("Hopper", "v4", "td3", steps, 1.0, None, "", None, "eval", "src", "file",
                         "eval_seeds_deterministic")

    at_100k, at_200k, at_1m, unstated = reference(100_000), reference(200_000), reference(1_000_000), reference(None)
    plotted = plotted_references([at_100k, at_200k, at_1m, unstated], 100_000)
    assert plotted == [at_100k, at_200k]  # a figure without a step has no place on the axis
