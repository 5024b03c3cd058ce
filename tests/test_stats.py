"""rliable statistics of rlrun-report: aggregates across envs, normalisation, performance profiles
and the probability of improvement, against values worked out by hand."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from conftest import column
from rliable import library
from test_report import write_run

from rlrun.cli import train_command as cli
from rlrun.config import ConfigError
from rlrun.results import aggregate
from rlrun.results.references import RandomScore, Reference, load_random_scores
from rlrun.results.report import write_report
from rlrun.results.score_normalisation import Normalisation, normalisation
from rlrun.results.statistics import (
    IQM_LABEL,
    MEAN_LABEL,
    improvement,
    performance_profile,
    score_distribution,
    summary,
    summary_per_step,
)


def test_probability_of_improvement_by_hand():
    assert improvement(column([10, 11, 12]), column([1, 2]), resamples=200) == (1.0, 1.0, 1.0)
    assert improvement(column([1, 2]), column([10, 11, 12]), resamples=200) == (0.0, 0.0, 0.0)
    assert improvement(column([3, 3, 3]), column([3, 3, 3]), resamples=200) == (0.5, 0.5, 0.5)
    point, low, high = improvement(column([2, 3, 5]), column([1, 4]), resamples=500)
    assert point == pytest.approx(4 / 6)  # 2>1, 3>1, 5>1, 5>4 of the 6 pairs
    assert 0.0 <= low <= point <= high <= 1.0 and low < high
    # two tasks: separated (1.0) and identical (0.5) average to 0.75
    x, y = np.array([[10.0, 3.0], [11.0, 3.0]]), np.array([[1.0, 3.0], [2.0, 3.0]])
    assert improvement(x, y, resamples=200)[0] == pytest.approx(0.75)


def test_summary_gives_the_iqm_and_its_ci_only_from_five_runs():
    assert summary([4.0, 1.0, 10.0, 3.0]) == (MEAN_LABEL, 4.5, 1.0, 10.0)  # an IQM would drop 2
    assert summary([-3.0]) == (MEAN_LABEL, -3.0, -3.0, -3.0)
    five = summary([1.0, 2.0, 3.0, 4.0, 100.0], resamples=500)
    assert (five.label, five.point) == (IQM_LABEL, 3.0)  # 1 and 100 dropped
    assert 1.0 <= five.low < 3.0 < five.high < 100.0
    assert five.text(1) == f"3.0 [{five.low:.1f}, {five.high:.1f}]" and IQM_LABEL == "IQM [95% CI]"
    label, centre, low, high = summary_per_step(np.array([[1.0, 5.0], [3.0, 9.0]]))
    assert label == MEAN_LABEL and centre.tolist() == [2.0, 7.0]
    assert (low.tolist(), high.tolist()) == ([1, 5], [3, 9])
    five_runs = np.array([[v, -v] for v in (1.0, 2.0, 3.0, 4.0, 100.0)])
    label, centre, _, _ = summary_per_step(five_runs, resamples=200)
    assert label == IQM_LABEL and centre.tolist() == [3.0, -3.0]


def test_performance_profile_is_rliables_run_score_distribution():
    scores = np.random.default_rng(0).normal(size=(5, 3))
    thresholds = np.linspace(-2, 2, 9)
    np.testing.assert_array_equal(score_distribution(scores, thresholds),
                                  library.score_distributions(scores, thresholds))
    profile, low, high = performance_profile(column([0.1, 0.5, 0.9, 1.3]), np.array([0.0, 0.5, 1.0]), 300)
    np.testing.assert_allclose(profile, [1.0, 0.5, 0.25])  # strictly above each threshold
    assert np.all(low <= profile) and np.all(profile <= high) and low[0] == high[0] == 1.0


def _random(env, version, mean):
    return RandomScore(env, version, mean, 1.0, 10, "test")


def _published(env, version, mean):
    return Reference(env, version, "ppo", 1000, mean, None, "", 3, "training return", "Lab", "file",
                     "train_window")


def test_normalisation_by_hand_and_its_fallbacks():
    finals = np.array([140.0, 260.0])
    randoms = [_random("CartPole", "v1", 20.0)]
    published = [_published("CartPole", "v1", 300.0), _published("CartPole", "v1", 500.0),
                 _published("CartPole", "v0", 1000.0)]  # another version: not used while v1 has figures
    norm = normalisation("CartPole-v1", finals, randoms, published)
    assert (norm.low, norm.high, norm.kind) == (20.0, 500.0, "random → reference")
    np.testing.assert_allclose(norm(finals), [(140 - 20) / 480, (260 - 20) / 480])
    assert "Lab" in norm.high_source and "CartPole-v1" in norm.high_source
    assert normalisation("CartPole-v0", finals, randoms, published).high == 1000.0  # its own version
    no_random = normalisation("CartPole-v1", finals, [], published)
    assert (no_random.low, no_random.kind) == (140.0, "worst observed → reference")
    no_reference = normalisation("CartPole-v1", finals, randoms, [])
    assert (no_reference.high, no_reference.kind) == (260.0, "random → best observed")
    below = normalisation("CartPole-v1", finals, randoms, [_published("CartPole", "v1", 10.0)])
    assert below.high == 260.0 and "not above the low anchor" in below.high_source
    assert normalisation("X-v0", np.array([5.0, 5.0]), [], []) is None  # nothing sets them apart


def test_the_shipped_random_scores_load():
    scores = {(score.env, score.env_version): score for score in load_random_scores()}
    assert {("CartPole", "v1"), ("Pendulum", "v1"), ("Hopper", "v4"), ("HalfCheetah", "v4")} <= set(scores)
    assert 15 < scores["CartPole", "v1"].mean < 35  # a random CartPole episode lasts about 22 steps
    assert scores["MountainCar", "v0"].mean == -200.0  # random actions never reach the flag


def _two_env_runs(root):
    """ppo on EnvA (finals 0, 10, 20, 30) and EnvB (100, 300, 500, 700, and a fifth seed)."""
    for seed, final in enumerate([0.0, 10.0, 20.0, 30.0]):
        write_run(root / f"a{seed}", "ppo", "EnvA-v0", seed, final, [f"seed={seed}"])
    for seed, final in enumerate([100.0, 300.0, 500.0, 700.0, 1e6]):
        write_run(root / f"b{seed}", "ppo", "EnvB-v0", seed, final, [f"seed={seed}"])
    for seed, final in enumerate([-5.0, -4.0, -3.0]):
        write_run(root / f"c{seed}", "a2c", "EnvA-v0", seed, final, [f"seed={seed}"])


def test_aggregate_of_a_known_normalised_matrix(tmp_path):
    _two_env_runs(tmp_path / "runs")
    groups = write_report([tmp_path / "runs"], tmp_path / "out", resamples=100)
    norms = {"EnvA-v0": Normalisation("EnvA-v0", 0.0, 10.0, "a", "b"),
             "EnvB-v0": Normalisation("EnvB-v0", 100.0, 200.0, "a", "b")}
    (a2c, ppo) = aggregate.aggregates(aggregate.methods_of(groups), norms, resamples=500, seed=0)
    # ppo's normalised matrix: EnvA 0 1 2 3, EnvB 0 2 4 6 (its fifth seed is left out: EnvA has 4)
    assert (ppo.method.label, ppo.envs, ppo.runs) == ("ppo", ["EnvA-v0", "EnvB-v0"], 4)
    assert ppo.iqm == pytest.approx((1 + 2 + 2 + 3) / 4)  # sorted 0 0 1 2 2 3 4 6, 2 off each end
    assert ppo.mean == pytest.approx((1.5 + 3.0) / 2)
    assert ppo.iqm_ci[0] <= ppo.iqm <= ppo.iqm_ci[1] and ppo.mean_ci[0] < ppo.mean_ci[1]
    # a2c has 3 runs in all: no IQM (it would drop none), their mean and range instead
    assert (a2c.envs, a2c.mean) == (["EnvA-v0"], pytest.approx(-0.4)) and math.isnan(a2c.iqm)
    _, scores = aggregate.normalised_scores(a2c.method, norms)
    assert a2c.mean_ci == (pytest.approx(scores.min()), pytest.approx(scores.max()))


def test_comparisons_pick_pairs_that_differ_in_one_key(tmp_path):
    _two_env_runs(tmp_path / "runs")
    groups = write_report([tmp_path / "runs"], tmp_path / "out", resamples=100)
    methods = aggregate.methods_of(groups)
    pairs = aggregate.single_key_pairs(methods)
    assert [(x.label, y.label, key) for x, y, key in pairs] == [("a2c", "ppo", "algo")]
    (found,) = aggregate.compare(pairs, resamples=200, seed=0)
    assert (found.envs, found.runs, found.probability) == (["EnvA-v0"], (3, 4), 0.0)  # only EnvA is shared
    request = aggregate.parse_compare("algo=ppo,a2c")
    ((x, y, key),) = aggregate.requested_pairs(methods, request)
    assert (x.label, y.label, key) == ("ppo", "a2c", "algo")
    for bad, message in [("algo=ppo", "KEY=A,B"), ("algo=ppo,ppo", "KEY=A,B"), ("=a,b", "KEY=A,B"),
                         ("seed=0,1", "does not tell these runs apart; use one of algo"),
                         ("algo=ppo,sac", "no run has algo=sac; values: a2c, ppo")]:
        with pytest.raises(ConfigError, match=message):
            aggregate.requested_pairs(methods, aggregate.parse_compare(bad))


def test_report_md_has_the_new_sections_and_files(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    for seed, final in enumerate([100.0, 200.0, 300.0]):
        write_run(root / f"ppo{seed}", "ppo", "CartPole-v1", seed, final, [f"seed={seed}"])
        write_run(root / f"a2c{seed}", "a2c", "CartPole-v1", seed, final + 1000, [f"seed={seed}"])
        write_run(root / f"odd{seed}", "ppo", "Odd-v0", seed, 7.0, [f"seed={seed}"])  # cannot normalise
    monkeypatch.setattr(sys, "argv", ["rlrun-report", str(root), "--resamples", "100", "--compare", "algo=a2c,ppo"])
    cli.report()
    out = root / "report"
    text = (out / "report.md").read_text()
    for heading in ("## Normalised scores", "## Aggregate over envs", "## Probability of improvement"):
        assert heading in text
    assert "| CartPole-v1 | random → reference | random policy 23.68 (CartPole-v1, 100 episodes) | published 500" in text
    assert "| Odd-v0 | not normalised: every run scored the same | - | - |" in text
    assert "| a2c | ppo | algo | CartPole-v1 | 3, 3 | 1.00 (no CI below 5 runs per env) |" in text
    assert "![performance profiles](performance_profile.png)" in text
    assert (out / "performance_profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, first = (out / "runs.csv").read_text().splitlines()[:2]
    assert header.endswith(",sps,normalised_return") and first.split(",")[-1]
    assert "probability of improvement" in capsys.readouterr().out

    monkeypatch.setattr(aggregate, "AUTO_COMPARISONS", 0)
    write_report([root], tmp_path / "auto", resamples=50)
    assert "(1 pairs differ in one key, more than 0: name the ones to compare with" in (
        tmp_path / "auto" / "report.md").read_text()


def test_a_refused_compare_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    write_run(root / "ppo0", "ppo", "CartPole-v1", 0, 100.0, ["seed=0"])
    for request in ("algo=ppo", "algo=ppo,a2c"):
        monkeypatch.setattr(sys, "argv", ["rlrun-report", str(root), "--out", str(tmp_path / "out"),
                                          "--compare", request])
        with pytest.raises(SystemExit) as stop:
            cli.report()
        assert stop.value.code == 2
        error = capsys.readouterr().err
        assert error.startswith("rlrun: --compare ") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()
