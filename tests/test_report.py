"""rlrun-report: statistics against hand-computed values, grouping, curves and the written files."""

from __future__ import annotations

import csv
import json
import sys
import warnings

import numpy as np
import pytest
import yaml
from conftest import column

from rlrun.cli import train_command as cli
from rlrun.results.plot_legend import add_legend
from rlrun.results.report import (
    CURVES_TRAIN_STEPS,
    RunRecord,
    learning_curve,
    training_curve,
    write_report,
)
from rlrun.results.statistics import IQM_LABEL, MEAN_LABEL, interval, iqm_and_mean, iqm_per_step

# Final returns by group, chosen so that mean and IQM differ.
PPO_DEFAULT = [100.0, 200.0, 300.0, 400.0, 10_000.0]  # mean 2200; IQM drops 1 each end: (200+300+400)/3 = 300
PPO_FAST = [10.0, 20.0, 30.0, 100.0]  # mean 40; IQM drops 1 each end: (20+30)/2 = 25
A2C_PENDULUM = [-200.0, -150.0, -100.0]  # mean -150; n=3 drops none: IQM -150


def write_run_dir(run_dir, config, overrides, records, tail=""):
    """A run dir as rlrun writes it: .hydra/config.yaml, .hydra/overrides.yaml and metrics.jsonl
    (`records` as JSON lines, then `tail`)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    algo, env = config["algo"]["name"], config["env"]["id"]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"algo={algo}", f"env={env}", *overrides]))
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (run_dir / "metrics.jsonl").write_text(lines + tail)


def write_run(run_dir, algo, env, seed, final, overrides, lr=0.00025, evals=True, sps=1000.0):
    """A run with evals at 1000, 2000, 3000 (final * 1/3, 2/3, 1), training returns half those."""
    config = {"algo": {"name": algo}, "env": {"id": env}, "seed": seed, "optimizer": {"lr": lr}}
    lines = []
    for i, step in enumerate((1000, 2000, 3000), start=1):
        lines.append({"step": step, "time": 2.0 * step / 1000, "train/loss": 0.1, "time/sps": sps + i,
                      "time/wall": 1.9 * step / 1000, "rollout/ep_return_mean": 0.5 * final * i / 3})
        if evals:
            lines.append({"step": step, "time": 2.0 * step / 1000 + 0.5, "eval/return_mean": final * i / 3})
    write_run_dir(run_dir, config, overrides, lines, tail='{"step": 3000, "eval/ret')  # a crash


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun"
    for seed, final in enumerate(PPO_DEFAULT):
        extra = ["logger.tensorboard=true"] if seed == 0 else []  # never groups
        write_run(root / f"ppo_s{seed}", "ppo", "CartPole-v1", seed, final, [f"seed={seed}", *extra])
    for seed, final in enumerate(PPO_FAST):
        write_run(root / f"ppo_fast_s{seed}", "ppo", "CartPole-v1", seed, final,
                  [f"seed={seed}", "optimizer.lr=0.001"], lr=0.001)
    for seed, final in enumerate(A2C_PENDULUM):
        write_run(root / "a2c" / f"s{seed}", "a2c", "Pendulum-v1", seed, final, [f"seed={seed}"], lr=0.0007)
    write_run(root / "unfinished", "ppo", "CartPole-v1", 9, 0.0, ["seed=9"], evals=False)  # skipped
    (root / "not_a_run").mkdir()
    (root / "not_a_run" / "metrics.jsonl").write_text('{"step": 1, "eval/return_mean": 1e9}\n')  # no .hydra
    return root


def test_iqm_and_mean_by_hand():
    assert iqm_and_mean(column(np.arange(1.0, 9.0)))[0] == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert iqm_and_mean(column(PPO_DEFAULT)) == pytest.approx([300.0, 2200.0])
    assert iqm_and_mean(column([5.0]))[0] == 5.0
    columns = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, 40.0]])  # 4 runs of 2 tasks
    # across tasks: the 8 scores sorted are 1 2 3 10 20 30 40 100; 2 dropped at each end
    assert iqm_and_mean(columns) == pytest.approx([(3 + 10 + 20 + 30) / 4, (26.5 + 25.0) / 2])
    np.testing.assert_allclose(iqm_per_step(columns[:, np.newaxis, :]), [2.5, 25.0])  # per step


def test_bootstrap_ci_is_seeded_and_matches_the_normal_approximation():
    values = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    before = np.random.get_state()[1].copy()
    _, low, high = interval(column(values), iqm_and_mean, resamples=2000, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # numpy's global state is put back
    half_width = 1.96 * values.std() / np.sqrt(len(values))  # independent: normal approximation
    assert low[1] == pytest.approx(values.mean() - half_width, abs=0.15 * half_width)
    assert high[1] == pytest.approx(values.mean() + half_width, abs=0.15 * half_width)
    _, same_low, same_high = interval(column(values), iqm_and_mean, 2000, 0)
    assert (same_low, same_high) == (pytest.approx(low), pytest.approx(high))
    assert interval(column(values), iqm_and_mean, 2000, 1)[1][1] != low[1]
    for constant in ([7.0], [3.0] * 5):  # one run, or all equal: no spread
        point, low, high = interval(column(constant), iqm_and_mean, 100, 0)
        np.testing.assert_array_equal([point, low, high], np.full((3, 2), constant[0]))


def curve_run(steps, returns):
    return RunRecord(path=None, algo="ppo", env="E", seed=0, overrides={}, config={},
                     eval_steps=np.array(steps), eval_returns=np.array(returns, float),
                     steps=steps[-1], wall=1.0, sps=1.0, train_steps=np.array([], int),
                     train_returns=np.array([]))


def test_learning_curve_interpolates_onto_the_union_of_eval_steps():
    runs = [curve_run([0, 10, 20], [0, 10, 20]), curve_run([0, 5, 10], [0, 0, 10])]
    grid, label, centre, low, high = learning_curve(runs, resamples=500, seed=0)
    np.testing.assert_array_equal(grid, [0, 5, 10])  # 20 lies outside the second run's range
    assert label == MEAN_LABEL  # two runs: their mean and range, no IQM nor bootstrap
    np.testing.assert_allclose(centre, [0.0, 2.5, 10.0])  # at 5: the first run interpolates to 5
    np.testing.assert_allclose(low, [0.0, 0.0, 10.0])
    np.testing.assert_allclose(high, [0.0, 5.0, 10.0])


def test_learning_curve_of_five_runs_is_the_iqm_with_its_bootstrap_band():
    runs = [curve_run([0, 10], [value, 2 * value]) for value in (1.0, 2.0, 3.0, 4.0, 100.0)]
    _, label, centre, low, high = learning_curve(runs, resamples=500, seed=0)
    assert label == IQM_LABEL
    np.testing.assert_allclose(centre, [3.0, 6.0])  # 1 and 100 (2 and 200) dropped
    assert low[0] < 3.0 < high[0] < 100.0 and low[1] < 6.0 < high[1]


def test_report_groups_runs_and_computes_the_table(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    groups = write_report([sweep], out, resamples=500, seed=0)
    printed = capsys.readouterr().out
    assert "skipped" in printed and "unfinished" in printed
    by_label = {(g.env, g.label): g for g in groups}
    assert set(by_label) == {
        ("CartPole-v1", "ppo optimizer.lr=0.00025"), ("CartPole-v1", "ppo optimizer.lr=0.001"),
        ("Pendulum-v1", "a2c optimizer.lr=0.0007"),
    }
    for label, finals in [("ppo optimizer.lr=0.00025", PPO_DEFAULT), ("ppo optimizer.lr=0.001", PPO_FAST)]:
        group = by_label["CartPole-v1", label]
        assert len(group.runs) == len(finals)
        assert sorted(group.seeds) == list(range(len(finals)))
        assert group.mean == pytest.approx(np.mean(finals))
    five = by_label["CartPole-v1", "ppo optimizer.lr=0.00025"].final  # 5 runs: IQM and bootstrap CI
    assert (five.label, five.point) == (IQM_LABEL, pytest.approx(300.0))
    assert min(PPO_DEFAULT) <= five.low < 300.0 < five.high <= max(PPO_DEFAULT)
    four = by_label["CartPole-v1", "ppo optimizer.lr=0.001"].final  # 4 runs: mean and range
    assert four == (MEAN_LABEL, pytest.approx(40.0), 10.0, 100.0)
    pendulum = by_label["Pendulum-v1", "a2c optimizer.lr=0.0007"]
    assert pendulum.final == (MEAN_LABEL, pytest.approx(-150.0), -200.0, -100.0)
    run = pendulum.runs[0]
    assert (run.steps, run.wall, run.sps) == (3000, pytest.approx(6.5), pytest.approx(1003.0))

    again = write_report([sweep], tmp_path / "again", resamples=500, seed=0)
    assert [g.final for g in again] == [g.final for g in groups]

    for name in ("CartPole-v1.png", "Pendulum-v1.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size > 10_000
    markdown = (out / "report.md").read_text()
    assert "![CartPole-v1](CartPole-v1.png)" in markdown and "![Pendulum-v1](Pendulum-v1.png)" in markdown
    assert f"| CartPole-v1 | ppo | 0.00025 | 5 | 2200.00 | {IQM_LABEL} | 300.00 [" in markdown
    four, three = "40.00 [10.00, 100.00]", "-150.00 [-200.00, -100.00]"
    assert f"| CartPole-v1 | ppo | 0.001 | 4 | 40.00 | {MEAN_LABEL} | {four} |" in markdown
    assert f"| Pendulum-v1 | a2c | 0.0007 | 3 | -150.00 | {MEAN_LABEL} | {three} |" in markdown
    assert "logger.tensorboard" not in markdown
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + 5 + 4 + 3


def test_cli_default_out_dir_and_errors(sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["rlrun-report", str(sweep), "--resamples", "200"])
    cli.report()
    assert (sweep / "report" / "report.md").is_file()
    assert "ppo" in capsys.readouterr().out
    cli.report()  # a second report over the same dir does not read its own output as runs
    for args in ([str(tmp_path / "nowhere")], [str(sweep / "not_a_run")]):
        monkeypatch.setattr(sys, "argv", ["rlrun-report", *args])
        with pytest.raises(SystemExit) as stop:
            cli.report()
        assert stop.value.code == 2
        assert capsys.readouterr().err.startswith("rlrun: ")


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_runs_csv_and_curves_csv_hold_each_runs_numbers_and_curves(tmp_path):
    root = tmp_path / "runs"
    config = {"algo": {"name": "ppo"}, "env": {"id": "Hopper-v4"}, "seed": 0,
              "optimizer": {"lr": 0.001}}
    records = [{"step": step, "rollout/ep_return_mean": step / 10} for step in range(10, 5010, 10)]
    records += [{"step": step, "eval/return_mean": -float(step)} for step in (1000, 2505, 5000)]
    records += [{"step": 5003, "train/loss": 0.5}]  # the last logged step carries neither return
    write_run_dir(root / "long", config, ["seed=0", "optimizer.lr=0.001"], records)
    short = {**config, "seed": 1, "optimizer": {"lr": 0.01}}
    write_run_dir(root / "short", short, ["seed=1", "optimizer.lr=0.01"],
                  [{"step": 100, "eval/return_mean": 7.0}])  # no training return logged
    write_report([root], tmp_path / "out", resamples=100)

    runs = read_csv(tmp_path / "out" / "runs.csv")
    assert list(runs[0]) == ["run_dir", "env", "algo", "optimizer.lr", "seed", "final_return",
                             "final_train_return", "steps", "wall_s", "sps", "normalised_return"]
    by_seed = {row["seed"]: row for row in runs}
    long = by_seed["0"]
    assert (float(long["final_return"]), float(long["final_train_return"])) == (-5000.0, 500.0)
    assert by_seed["1"]["final_train_return"] == ""

    rows = read_csv(tmp_path / "out" / "curves.csv")
    assert list(rows[0]) == ["run_dir", "env", "algo", "optimizer.lr", "seed", "step",
                             "eval_return", "train_return"]
    assert [row["run_dir"] for row in rows] == sorted(row["run_dir"] for row in rows)
    long = [row for row in rows if row["seed"] == "0"]
    assert {row["optimizer.lr"] for row in long} == {"0.001"} and long[0]["env"] == "Hopper-v4"
    steps = [int(row["step"]) for row in long]
    assert steps == sorted(set(steps)) and steps[0] == 10 and steps[-1] == 5003
    evals = {int(row["step"]): row for row in long if row["eval_return"]}
    assert {step: float(row["eval_return"]) for step, row in evals.items()} == {
        1000: -1000.0, 2505: -2505.0, 5000: -5000.0}
    assert float(evals[2505]["train_return"]) == 250.0  # the last training return at or before 2505
    trained = [row for row in long if not row["eval_return"] and int(row["step"]) != 5003]
    assert 150 < len(trained) <= CURVES_TRAIN_STEPS  # 500 training logs thinned to at most 200
    gaps = np.diff([int(row["step"]) for row in trained])
    assert gaps.max() <= 30
    assert all(float(row["train_return"]) == int(row["step"]) / 10 for row in trained)
    assert (long[-1]["eval_return"], float(long[-1]["train_return"])) == ("", 500.0)
    short_rows = [row for row in rows if row["seed"] == "1"]
    points = [(row["step"], row["eval_return"], row["train_return"]) for row in short_rows]
    assert points == [("100", "7.0", "")]


LONG_ENV = "gymnasium_robotics_like:FetchPickAndPlaceDenseLongName-v4"


def test_table_in_a_pipe_keeps_every_cell_whole_and_columns_is_honoured(tmp_path, capsys, monkeypatch):
    write_run(tmp_path / "runs" / "s0", "ppo", LONG_ENV, 0, 1234.5678, ["seed=0"])
    monkeypatch.delenv("COLUMNS", raising=False)
    write_report([tmp_path / "runs"], tmp_path / "out", resamples=50)
    printed = capsys.readouterr().out  # captured: not a terminal
    assert LONG_ENV in printed and "1234.57 [1234.57, 1234.57]" in printed
    assert "…" not in printed
    monkeypatch.setenv("COLUMNS", "60")
    write_report([tmp_path / "runs"], tmp_path / "out", resamples=50)
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line[:1] in "┏┃┡│└"]
    assert LONG_ENV not in printed and max(map(len, table)) == 60


def test_a_run_shorter_than_its_eval_interval_draws_its_training_curve():
    run = curve_run([3000], [50.0])  # one evaluation: a single point
    run.train_steps, run.train_returns = np.array([1000, 2000, 3000]), np.array([10.0, 20.0, 30.0])
    other = curve_run([3000], [70.0])
    other.train_steps, other.train_returns = np.array([500, 2500]), np.array([0.0, 40.0])
    grid, mean, logged = training_curve([run, other, curve_run([3000], [1.0])])
    assert logged == 2  # the run without training returns is left out
    np.testing.assert_array_equal(grid, [1000, 2000, 2500])  # the union within their common range
    np.testing.assert_allclose(mean, [(10 + 10) / 2, (20 + 30) / 2, (25 + 40) / 2])
    assert training_curve([curve_run([3000], [1.0])]) is None


def labels_fit(figure):
    """The legend's texts, after checking the legend lies inside the figure and matplotlib warned
    of nothing (e.g. that constrained layout could not place it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure.draw_without_rendering()  # lays the figure out
    legend = figure.legends[0] if figure.legends else figure.axes[0].get_legend()
    box, page = legend.get_window_extent(), figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 <= box.y0
    return [text.get_text().replace("\n", " ") for text in legend.get_texts()]


@pytest.mark.parametrize("keys", [1, 9])
def test_legends_show_whole_labels(keys):
    from matplotlib.figure import Figure

    labels = [f"ppo {' '.join(f'algo.key_{k}=0.00{k}{run}' for k in range(keys))}: evaluation"
              for run in range(4)]
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    axes = figure.subplots()
    for label in labels:
        axes.plot([0, 1], [0, 1], label=label)
    add_legend(figure, axes)
    assert labels_fit(figure) == labels
    assert (figure.get_figheight() > 4.5) == (keys == 9)  # a long legend goes below, on a taller figure


def test_a_sweep_report_plots_without_warnings(tmp_path):
    for seed in range(3):
        values = {f"key_{k}": f"0.{seed}{k}1234567890123456" for k in range(9)}
        overrides = [f"algo.{key}={value}" for key, value in values.items()]
        config = {"algo": {"name": "ppo", **values},
                  "env": {"id": "CartPole-v1"}, "seed": seed}
        records = [{"step": 100, "rollout/ep_return_mean": 1.0 + seed},
                   {"step": 200, "eval/return_mean": 2.0 + seed}]
        write_run_dir(tmp_path / "runs" / f"t{seed}", config, overrides, records)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        write_report([tmp_path / "runs"], tmp_path / "out", resamples=20)
