"""rlrun-report: statistics against hand-computed values, grouping, curves and the written files."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml

from rlrun import cli
from rlrun.report import RunRecord, learning_curve, write_report
from rlrun.stats import interval, iqm_and_mean, iqm_per_step

# Final returns by group, chosen so that mean and IQM differ.
PPO_DEFAULT = [100.0, 200.0, 300.0, 400.0, 10_000.0]  # mean 2200; IQM drops 1 each end: (200+300+400)/3 = 300
PPO_FAST = [10.0, 20.0, 30.0, 100.0]  # mean 40; IQM drops 1 each end: (20+30)/2 = 25
A2C_PENDULUM = [-200.0, -150.0, -100.0]  # mean -150; n=3 drops none: IQM -150


def write_run(run_dir, algo, env, seed, final, overrides, lr=0.00025, evals=True, sps=1000.0):
    """A run dir as rlrun writes it: .hydra files and metrics.jsonl with evals at 1000, 2000, 3000."""
    (run_dir / ".hydra").mkdir(parents=True)
    config = {"algo": {"name": algo}, "env": {"id": env}, "seed": seed, "optimizer": {"lr": lr}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"algo={algo}", f"env={env}", *overrides]))
    lines = []
    for i, step in enumerate((1000, 2000, 3000), start=1):
        lines.append({"step": step, "time": 2.0 * step / 1000, "train/loss": 0.1, "time/sps": sps + i,
                      "time/wall": 1.9 * step / 1000, "rollout/ep_return_mean": 0.5 * final * i / 3})
        if evals:
            lines.append({"step": step, "time": 2.0 * step / 1000 + 0.5, "eval/return_mean": final * i / 3})
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (run_dir / "metrics.jsonl").write_text(text + '{"step": 3000, "eval/ret')  # a line cut short by a crash


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


def column(values):
    """Scores of one task as rliable takes them: shape (runs, 1)."""
    return np.array(values, dtype=float).reshape(-1, 1)


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


def test_learning_curve_interpolates_onto_the_union_of_eval_steps():
    def run(steps, returns):
        return RunRecord(path=None, algo="ppo", env="E", seed=0, overrides={}, config={},
                         eval_steps=np.array(steps), eval_returns=np.array(returns, float), steps=steps[-1],
                         wall=1.0, sps=1.0, train_return=0.0)

    runs = [run([0, 10, 20], [0, 10, 20]), run([0, 5, 10], [0, 0, 10])]
    grid, centre, low, high = learning_curve(runs, resamples=500, seed=0)
    np.testing.assert_array_equal(grid, [0, 5, 10])  # 20 lies outside the second run's range
    np.testing.assert_allclose(centre, [0.0, 2.5, 10.0])  # at 5: the first run interpolates to 5
    np.testing.assert_allclose([low[1], high[1]], [0.0, 5.0])  # resampling two runs: 0, 2.5 or 5
    np.testing.assert_allclose([low[2], high[2]], [10.0, 10.0])


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
        assert group.mean_ci[0] <= group.mean <= group.mean_ci[1]
        assert group.iqm_ci[0] <= group.iqm <= group.iqm_ci[1]
        assert min(finals) <= group.mean_ci[0] and group.mean_ci[1] <= max(finals)
    assert by_label["CartPole-v1", "ppo optimizer.lr=0.00025"].iqm == pytest.approx(300.0)
    assert by_label["CartPole-v1", "ppo optimizer.lr=0.001"].iqm == pytest.approx(25.0)
    pendulum = by_label["Pendulum-v1", "a2c optimizer.lr=0.0007"]
    assert (pendulum.mean, pendulum.iqm) == (pytest.approx(-150.0), pytest.approx(-150.0))
    run = pendulum.runs[0]
    assert (run.steps, run.wall, run.sps) == (3000, pytest.approx(6.5), pytest.approx(1003.0))

    again = write_report([sweep], tmp_path / "again", resamples=500, seed=0)
    assert [(g.mean_ci, g.iqm_ci) for g in again] == [(g.mean_ci, g.iqm_ci) for g in groups]

    for name in ("CartPole-v1.png", "Pendulum-v1.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size > 10_000
    markdown = (out / "report.md").read_text()
    assert "![CartPole-v1](CartPole-v1.png)" in markdown and "![Pendulum-v1](Pendulum-v1.png)" in markdown
    assert "| CartPole-v1 | ppo | 0.00025 | 5 | 2200.00 |" in markdown
    assert "| CartPole-v1 | ppo | 0.001 | 4 | 40.00 |" in markdown
    assert "| Pendulum-v1 | a2c | 0.0007 | 3 | -150.00 |" in markdown
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
