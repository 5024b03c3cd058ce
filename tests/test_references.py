"""Published reference scores: the shipped CSV, and reports that set runs beside them."""

from __future__ import annotations

import csv

import pytest
from test_report import write_run

from rlrun.config import ConfigError
from rlrun.references import (
    SCORES,
    Reference,
    differences,
    load_references,
    matching,
    ratio,
    split_env_id,
)
from rlrun.registry import algorithms
from rlrun.report import plotted_references, write_report


def test_the_shipped_scores_load_and_every_row_names_its_source():
    references = load_references()
    assert len(references) >= 50
    assert {"CleanRL", "RL Zoo", "Tianshou", "Duan et al. 2016"} <= {ref.source for ref in references}
    for ref in references:
        assert ref.env and ref.measure and ref.source and ref.source_file, ref
        assert ref.algorithm in algorithms(), ref
        assert ref.env_version in ("v0", "v1", "v2", "v3", "v4", "v5", "rllab"), ref
    hopper = {(ref.source, ref.algorithm) for ref in references if ref.env == "Hopper"}
    for expected in [("CleanRL", "ppo"), ("CleanRL", "sac"), ("CleanRL", "td3"), ("CleanRL", "ddpg"),
                     ("RL Zoo", "trpo"), ("RL Zoo", "a2c"), ("Tianshou", "npg"), ("Tianshou", "reinforce"),
                     ("Duan et al. 2016", "trpo")]:
        assert expected in hopper, expected


@pytest.mark.parametrize("env_id, expected", [("Hopper-v4", ("Hopper", "v4")), ("ALE/Pong-v5", ("Pong", "v5")),
                                              ("BreakoutNoFrameskip-v4", ("Breakout", "v4")),
                                              ("lm", ("lm", ""))])
def test_env_ids_split_into_name_and_version(env_id, expected):
    assert split_env_id(env_id) == expected


def _scores(path):
    rows = [
        {"env": "CartPole", "env_version": "v1", "algorithm": "ppo", "steps": "3000", "mean": "100",
         "spread": "10", "spread_kind": "std", "seeds": "3", "measure": "training return",
         "source": "Lab A", "source_file": "a/docs.md"},
        {"env": "CartPole", "env_version": "v0", "algorithm": "ppo", "steps": "500000", "mean": "200",
         "spread": "", "spread_kind": "", "seeds": "1", "measure": "deterministic evaluation return",
         "source": "Lab B", "source_file": "b/bench.md"},
        {"env": "Pendulum", "env_version": "v1", "algorithm": "a2c", "steps": "3000", "mean": "-200",
         "spread": "", "spread_kind": "", "seeds": "", "measure": "max average return during training",
         "source": "Lab C", "source_file": "c/README.md"},
        {"env": "Hopper", "env_version": "v4", "algorithm": "ppo", "steps": "1000000", "mean": "2000",
         "spread": "", "spread_kind": "", "seeds": "", "measure": "training return", "source": "Lab A",
         "source_file": "a/docs.md"},
    ]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return load_references(path)


def test_a_report_sets_each_group_beside_its_published_figures(tmp_path):
    references = _scores(tmp_path / "scores.csv")
    root = tmp_path / "runs"
    for seed, final in enumerate([300.0, 300.0, 300.0]):  # eval IQM 300, training IQM 150
        write_run(root / f"ppo{seed}", "ppo", "CartPole-v1", seed, final, [f"seed={seed}"])
    for seed, final in enumerate([-150.0, -150.0]):
        write_run(root / f"a2c{seed}", "a2c", "Pendulum-v1", seed, final, [f"seed={seed}"])
    write_report([root], tmp_path / "out", resamples=200, references=references)
    text = (tmp_path / "out" / "report.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| CartPole-v1 | ppo") and "Lab" in line]
    lab_a, lab_b = sorted(table)
    assert "| 1.50x |" in lab_a and "| - |" in lab_a  # training 150 vs training 100, nothing differs
    assert "| 1.50x |" in lab_b and "v0 vs rlrun's v1" in lab_b and "budget 500,000 vs rlrun's 3,000" in lab_b
    (pendulum,) = [line for line in text.splitlines() if line.startswith("| Pendulum-v1 | a2c") and "Lab" in line]
    assert "| +50.0 |" in pendulum and "measure: max average return during training" in pendulum  # vs eval
    assert "Hopper" not in text  # no runs there
    assert (tmp_path / "out" / "CartPole-v1.png").stat().st_size > 0


def test_matching_differences_and_ratios():
    references = [ref for ref in load_references() if ref.env == "Hopper"]
    assert all(ref.algorithm == "ppo" for ref in matching(references, "Hopper-v5", "ppo"))
    cleanrl = next(ref for ref in matching(references, "Hopper-v4", "ppo") if ref.source == "CleanRL")
    assert differences(cleanrl, "Hopper-v4", 1_000_000) == []
    assert differences(cleanrl, "Hopper-v5", 500_000) == ["v4 vs rlrun's v5", "budget 1,000,000 vs rlrun's 500,000"]
    assert ratio(300.0, 100.0) == "3.00x" and ratio(-150.0, -200.0) == "+50.0"


def test_a_malformed_reference_file_is_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text("env,algorithm\nHopper,ppo\n")
    with pytest.raises(ConfigError, match="lacks the columns"):
        load_references(tmp_path / "bad.csv")
    assert SCORES.name == "scores.csv"


def test_curves_leave_off_figures_far_past_the_runs_budget():
    def reference(steps):
        return Reference("Hopper", "v4", "td3", steps, 1.0, None, "", None, "eval", "src", "file")

    at_100k, at_200k, at_1m, unstated = reference(100_000), reference(200_000), reference(1_000_000), reference(None)
    assert plotted_references([at_100k, at_200k, at_1m, unstated], 100_000) == [at_100k, at_200k, unstated]
