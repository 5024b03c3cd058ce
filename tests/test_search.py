"""rlrun's Optuna sweeper (hydra/sweeper=rlrun_optuna): the search space syntax, storages,
pruning across processes, continuing a study, repeated parameters, journal storage under
joblib, and the study section of rlrun-report."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import rlrun

optuna = pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from rlrun.config import ConfigError
from rlrun.search.space import parse_space
from rlrun.search.study import check_settings, open_storage, storage_url
from rlrun.search.trial import TrialReporter

SMALL = [
    "env=CartPole-v1",
    "total_timesteps=1024",
    "algo.num_steps=32",
    "eval.episodes=2",
    "eval.num_envs=2",
    "eval.every_steps=256",
]
"""PPO on CartPole: 4 envs x 32 steps per iteration, evaluations at steps 256, 512, 768, 1024."""


def load(sweep: Path, name: str = "optuna.db") -> optuna.Study:
    url = f"sqlite:///{sweep / name}" if name.endswith(".db") else f"journal:{sweep / name}"
    return optuna.load_study(study_name="ppo", storage=open_storage(url))


# ----- pure parts -------------------------------------------------------------------------------
def test_params_parse_like_hydras_optuna_sweeper_and_the_command_line_overrides_them():
    params = {
        "optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
        "algo.num_epochs": "choice(1, 5, 10)",
        "algo.gamma": "interval(0.9, 0.99)",
        "algo.num_steps": "tag(int, interval(32, 256))",
        "algo.batch_size": "tag(int, log, interval(8, 512))",
        "algo.num_minibatches": "range(1, 9, 2)",
        "algo.clip_coef": "0.2",
    }
    space = parse_space(params, ["algo.ent_coef=0.01", "algo.clip_coef=choice(0.1,0.3)", "seed=3"])
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
        "algo.gamma": FloatDistribution(0.9, 0.99),
        "algo.num_epochs": CategoricalDistribution([1, 5, 10]),
        "algo.num_steps": IntDistribution(32, 256),
        "algo.batch_size": IntDistribution(8, 512, log=True),
        "algo.num_minibatches": IntDistribution(1, 9, step=2),
        "algo.clip_coef": CategoricalDistribution([0.1, 0.3]),
    }
    assert space.fixed == {"algo.ent_coef": "algo.ent_coef=0.01", "seed": "seed=3"}
    assert (
        parse_space(params, ["algo.gamma=0.95"]).fixed["algo.gamma"] == "algo.gamma=0.95"
    )  # fixed here
    assert space.overrides({"algo.num_epochs": 5, "optimizer.lr": 1e-3}) == [
        "algo.ent_coef=0.01",
        "algo.num_epochs=5",
        "optimizer.lr=0.001",
        "seed=3",
    ]
    with pytest.raises(ConfigError, match="not a search range"):
        parse_space({"env": "glob(*)"}, [])


def test_storage_names_and_settings_checks(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert storage_url("journal", tmp_path) == f"journal:{tmp_path / 'optuna.journal'}"
    assert storage_url("postgresql://host/db", tmp_path) == "postgresql://host/db"
    settings = {
        "sampler": "tpe",
        "pruner": "median",
        "direction": "maximize",
        "n_trials": 1,
        "n_jobs": 1,
        "pruner_startup_trials": 0,
        "pruner_warmup_steps": 0,
        "max_failure_rate": 0.0,
        "storage": None,
    }
    check_settings(settings)
    for key, value, message in [
        ("sampler", "tpee", "is not one of tpe | cmaes | gp | random"),
        ("pruner", "early", "is not one of none | median | hyperband"),
        ("n_jobs", 0, "must be >= 1"),
        ("storage", "optuna.db", "is not a storage"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_settings({**settings, key: value})


def test_a_seed_reports_at_its_offset_and_a_pruned_trial_says_so(tmp_path):
    study = optuna.create_study(
        storage=open_storage(storage_url(None, tmp_path)),
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1),
    )
    best = study.ask()
    best.report(100.0, 1256)
    study.tell(best, 100.0)
    trial = study.ask()
    reporter = TrialReporter(optuna.Trial(study, trial._trial_id), offset=1000)
    assert reporter.report(1.0, 256, may_prune=False) is False  # the final evaluation never prunes
    assert reporter.report(1.0, 300, may_prune=True) is False  # no finished trial reported at 1300
    assert study.trials[1].intermediate_values == {1256: 1.0, 1300: 1.0}
    assert "pruned_at_step" not in study.trials[1].user_attrs
    other = TrialReporter(optuna.Trial(study, study.ask()._trial_id), offset=1000)
    assert other.report(1.0, 256, may_prune=True) is True  # 1 < 100 at step 1256
    assert study.trials[2].user_attrs["pruned_at_step"] == 1256


# ----- searches -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pruned_search(tmp_path_factory):
    """A study continued by a second command: the first runs the fixed config (two trials, the
    second of which repeats the first); the second caps evaluation episodes at 5 steps, below
    any CartPole episode (at least 8 steps), so its trial is surely worse than the first at
    its first evaluation and the median pruner (1 startup trial) stops it there."""
    cwd = tmp_path_factory.mktemp("search")
    sweep = cwd / "sweep"
    args = [
        "hparams_search=ppo_optuna",
        "hydra.sweeper.params=null",
        "hparams_search.seeds=[0,1]",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner_startup_trials=1",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
    ]
    first = rlrun(*args, "eval.max_episode_steps=500", cwd=cwd)
    assert first.returncode == 0, first.stderr
    done = {path: path.stat().st_mtime_ns for path in sweep.glob("*/seed_*/checkpoints/last.pt")}
    second = rlrun(*args, "eval.max_episode_steps=5", cwd=cwd)
    assert second.returncode == 0, second.stderr
    return sweep, first, second, done


@pytest.mark.slow
def test_a_trial_behind_the_median_is_pruned_in_its_first_seed_after_a_checkpoint(pruned_search):
    from rlrun.run.checkpoint_files import load_checkpoint

    sweep, _first, second, _done = pruned_search
    study = load(sweep)
    assert [trial.state for trial in study.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.PRUNED,
    ]
    pruned = study.trials[2]
    assert pruned.intermediate_values == {256: 5.0} and pruned.value == 5.0
    assert pruned.user_attrs["pruned_at_step"] == 256
    assert "the search pruned this trial at step 256" in second.stdout
    (job_dir,) = {path.parent for path in sweep.glob("*eval.max_episode_steps=5,*/seed_*")}
    assert sorted(path.name for path in job_dir.iterdir()) == ["seed_0"]  # seed 1 never trained
    state = load_checkpoint(job_dir / "seed_0")
    assert state["global_step"] == 256 and state["final_eval_return"] is None
    completed = study.trials[0]  # seed 1 reported after seed 0's budget: 1024 + its env step
    assert set(completed.intermediate_values) == {256, 512, 768, 1024, 1280, 1536, 1792, 2048}
    assert all(value > 5.0 for value in completed.intermediate_values.values())


def test_repeated_parameters_are_answered_from_the_study_without_training(pruned_search):
    sweep, first, second, _done = pruned_search
    study = load(sweep)
    assert (
        study.trials[1].user_attrs["same_as"] == 0
        and study.trials[1].value == study.trials[0].value
    )
    assert study.trials[3].user_attrs["same_as"] == 2 and study.trials[3].value == 5.0
    assert "Trial 1: the parameters of trial 0; answered from the study" in first.stdout
    assert first.stdout.count("rlrun: training") == 2  # trial 0's two seeds, nothing for trial 1
    assert second.stdout.count("rlrun: training") == 1


def test_a_rerun_continues_the_study_without_retraining_finished_trials(pruned_search):
    sweep, _first, second, done = pruned_search
    assert len(done) == 2
    assert {path: path.stat().st_mtime_ns for path in done} == done
    assert "2 trials so far; 2 more" in second.stdout
    results = (sweep / "optimization_results.yaml").read_text()
    assert "best_trial: 0" in results and "pruned: 2" in results and "complete: 2" in results


def test_report_shows_the_study(pruned_search, tmp_path):
    from rlrun.results.report import write_report

    sweep, *_ = pruned_search
    write_report([sweep], tmp_path, resamples=20)
    text = (tmp_path / "report.md").read_text()
    assert "## Study `ppo`" in text and "| complete | 2 |" in text and "| pruned | 2 |" in text
    assert "Best trial: 0" in text
    assert "(no parameter varies across the completed trials)" in text  # the study searched no key
    assert (tmp_path / "optimization_history.png").stat().st_size > 1000
    assert (tmp_path / "intermediate_values.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
    ids=["joblib", "submitit_local"],
)
def test_journal_storage_gets_reports_from_the_worker_processes(launcher, tmp_path):
    plugin = "joblib" if "joblib" in launcher[0] else "submitit"
    pytest.importorskip(f"hydra_plugins.hydra_{plugin}_launcher")
    sweep = tmp_path / "sweep"
    result = rlrun(
        "hparams_search=ppo_optuna",
        "hydra.sweeper.params=null",
        "hparams_search.seeds=[0]",
        "algo.clip_coef=interval(0.1,0.3)",
        *launcher,
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.storage=journal",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.sampler_seed=0",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (sweep / "optuna.journal").is_file() and not (sweep / "optuna.db").exists()
    study = load(sweep, "optuna.journal")
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 2
    assert all(set(trial.intermediate_values) == {256, 512, 768, 1024} for trial in study.trials)
    assert len({trial.params["algo.clip_coef"] for trial in study.trials}) == 2


def test_a_bad_sweeper_setting_fails_in_one_line_before_the_sweep(tmp_path):
    result = rlrun(
        "hparams_search=ppo_optuna",
        "hydra.sweeper.sampler=tpee",
        *SMALL,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "rlrun: hydra.sweeper.sampler=tpee is not one of tpe | cmaes | gp | "
        "random; e.g. hydra.sweeper.sampler=tpe"
    )
    assert not (tmp_path / "sweep").exists()
