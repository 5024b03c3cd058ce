"""Sweeps: run dir naming, launchers (joblib, submitit), the Optuna search with seeds per trial,
re-launching a finished sweep, preemption (checkpoint, requeue, resume) and GPU spreading."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import read_metrics, rlrun
from omegaconf import OmegaConf

from rlrun.cli.sweep_jobs import (
    MAX_DIR_NAME,
    assign_gpu,
    gpu_for_job,
    job_dir_name,
    job_label,
)

TINY = ["total_timesteps=256", "algo.num_steps=32", "eval.episodes=2", "eval.num_envs=2",
        "eval.every_steps=0"]


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(path.parent for path in sweep_dir.rglob("metrics.jsonl"))


def files_of(run_dir: Path) -> tuple[str, int]:
    """What training would change: the metrics and the last checkpoint's modification time."""
    return (run_dir / "metrics.jsonl").read_text(), (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns


def final_return(run_dir: Path) -> float:
    rows = read_metrics(run_dir)
    return [row["eval/return_mean"] for row in rows if "eval/return_mean" in row][-1]


# ----- pure functions -----------------------------------------------------------------------
def test_gpu_for_job_spreads_jobs_round_robin_over_the_visible_gpus():
    assert [gpu_for_job(job, ["0", "1"]) for job in range(5)] == ["0", "1", "0", "1", "0"]
    assert [gpu_for_job(job, ["3", "5", "7"]) for job in range(4)] == ["3", "5", "7", "3"]
    assert gpu_for_job(4, ["0"]) is None
    assert gpu_for_job(0, []) is None


def test_assign_gpu_narrows_cuda_visible_devices_only_for_local_parallel_gpu_jobs(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert assign_gpu("cpu", "joblib", 1) is None
    assert assign_gpu("auto", "basic", 1) is None
    assert assign_gpu("cuda:0", "submitit_local", 1) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert assign_gpu("auto", "joblib", 3) == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert assign_gpu("cuda", "submitit_local", 4) is None  # one GPU left visible: the worker keeps it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert assign_gpu("cuda", "submitit_local", 4) == "1"


def test_job_dir_name_is_one_short_unique_path_component():
    assert job_dir_name("algo=ppo,seed=0") == "algo=ppo,seed=0"
    assert job_dir_name("env=ALE/Pong-v5,seed=1") == "env=ALE_Pong-v5,seed=1"
    assert job_dir_name(r"env=mymod\:MyEnv-v0,seed=1") == "env=mymod:MyEnv-v0,seed=1"
    # Brackets, braces, quotes and spaces, which a shell expands or splits at, become `_`.
    wrapped = "env.wrappers=[{_target_:my.Repeat,times:3},{_target_:my.Scale,k:2}],tags='a b'"
    assert job_dir_name(wrapped) == (
        "env.wrappers=__target_:my.Repeat,times:3_,__target_:my.Scale,k:2_,tags=_a_b_")
    long_a = ",".join(f"algo.key_{i}=0.000123456789" for i in range(20))
    long_b = long_a[:-1] + "8"
    name_a, name_b = job_dir_name(long_a), job_dir_name(long_b)
    assert len(name_a.encode()) <= MAX_DIR_NAME and len(name_b.encode()) <= MAX_DIR_NAME
    assert name_a != name_b and name_a[:100] == long_a[:100]
    assert job_dir_name(long_a) == name_a


# ----- config -------------------------------------------------------------------------------
@pytest.mark.parametrize("search, env", [("ppo_optuna", "Pendulum-v1"), ("sac_optuna", "Pendulum-v1"),
                                         ("dqn_optuna", "CartPole-v1"), ("td3_optuna", "Pendulum-v1")])
def test_search_spaces_name_real_keys(search, env):
    pytest.importorskip("optuna")
    from hydra import compose, initialize_config_dir

    from rlrun.cli import train_command as cli
    from rlrun.search.space import parse_space

    cli._setup()
    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"hparams_search={search}", f"env={env}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("RlrunOptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.study_name == search.split("_")[0] and sweeper.storage is None  # sqlite in the sweep dir
    assert cfg.hparams_search.seeds == [0, 1, 2]
    space = parse_space(dict(sweeper.params), [])
    assert set(space.distributions) == set(sweeper.params) and not space.fixed
    for low_or_high in (0, -1):  # every range's ends compose and validate
        values = []
        for key, distribution in space.distributions.items():
            ends = getattr(distribution, "choices", None) or (distribution.low, distribution.high)
            values.append(f"{key}={ends[low_or_high]}")
        typed = cli.compose_checked("train", [f"hparams_search={search}", f"env={env}", *values])
        assert OmegaConf.select(typed, "algo.name") == search.split("_")[0]


def test_slurm_launcher_config_overrides_the_plugin_defaults():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from rlrun.cli import train_command as cli

    cli._setup()
    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=submitit_slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.timeout_min, launcher.signal_delay_s, launcher.max_num_timeout) == (1440, 180, 5)


# ----- Run: finished runs and preemption ----------------------------------------------------
def test_finished_result_needs_the_final_checkpoint_of_the_budget(train_run, compose_cfg, tmp_path):
    from rlrun.run.facade import Run, finished_result

    result = train_run(TINY, tmp_path / "done")
    cfg = compose_cfg(TINY)
    done = finished_result(cfg, tmp_path / "done")
    assert done is not None and done.final_eval_return == result.final_eval_return
    assert done.global_step == result.global_step
    assert finished_result(compose_cfg([*TINY, "total_timesteps=100000"]), tmp_path / "done") is None
    assert finished_result(cfg, tmp_path / "empty") is None
    run = Run(cfg, tmp_path / "periodic")  # a checkpoint at the budget, but not the final one
    run.save_checkpoint(cfg.total_timesteps)
    run.close()
    assert finished_result(cfg, tmp_path / "periodic") is None


def test_usr2_checkpoints_then_passes_the_signal_to_the_previous_handler(train_run, monkeypatch, tmp_path):
    from rlrun.run.checkpoint_files import load_checkpoint
    from rlrun.run.facade import Run, RunInterrupted

    received = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    log = Run.log

    def log_then_preempt(self, metrics, step):
        log(self, metrics, step)
        if not self.should_stop:
            signal.raise_signal(signal.SIGUSR2)

    monkeypatch.setattr(Run, "log", log_then_preempt)
    try:
        with pytest.raises(RunInterrupted) as stopped:
            train_run(["total_timesteps=100000", *TINY[1:]], tmp_path)
        assert received == []  # Run's handler had it during training
        assert stopped.value.signum == signal.SIGUSR2 and stopped.value.exit_code == 128 + signal.SIGUSR2
        state = load_checkpoint(tmp_path)
        assert 0 < state["global_step"] < 100000 and state["final_eval_return"] is None
        stopped.value.pass_on()
        assert received == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


# ----- the command line ---------------------------------------------------------------------
def test_a_typo_in_any_value_of_a_group_sweep_fails_before_the_sweep(tmp_path):
    result = rlrun("-m", "algo=ppo,a2c,pppo", *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("rlrun: unknown algo 'pppo'"), result.stderr
    assert not (tmp_path / "sweep").exists()


def test_relaunching_a_finished_sweep_returns_the_recorded_results_without_training(tmp_path):
    args = ["-m", "algo=ppo", "seed=0,1", *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    started = time.perf_counter()
    first = rlrun(*args, cwd=tmp_path)
    first_s = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    dirs = run_dirs(tmp_path / "sweep")
    assert [d.name for d in dirs] == [",".join(sorted(["algo=ppo", f"seed={s}", *TINY])) for s in (0, 1)]
    before = {d: files_of(d) for d in dirs}
    started = time.perf_counter()
    second = rlrun(*args, cwd=tmp_path)
    second_s = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    assert "Finished at step" not in second.stdout
    for job, run_dir in enumerate(dirs):
        recorded = final_return(run_dir)
        line = next(line for line in second.stdout.splitlines() if f"rlrun: {run_dir} already" in line)
        assert line.startswith(f"[job {job} ")  # the job's label, as its other lines
        assert f"rlrun: {run_dir} already finished at step 256; its recorded final eval return is " \
               f"{recorded:.2f}" in line
        assert f"eval return {recorded:.2f}" in first.stdout
        assert files_of(run_dir) == before[run_dir]
    print(f"first launch {first_s:.1f} s, re-launch {second_s:.1f} s")


@pytest.mark.slow
def test_joblib_grid_writes_one_run_dir_per_job_named_by_its_overrides(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    result = rlrun("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "algo=ppo,a2c", "seed=0,1",
                   "env=CartPole-v1", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dirs = run_dirs(sweep)
    assert len(dirs) == 4 and all(d.parent == sweep for d in dirs)
    assert {d.name for d in dirs} == {
        ",".join(sorted([f"algo={algo}", f"seed={seed}", "env=CartPole-v1", *TINY]))
        for algo in ("a2c", "ppo") for seed in (0, 1)
    }
    for run_dir in dirs:
        overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
        assert {"env=CartPole-v1", "total_timesteps=256"} <= set(overrides)
        assert (run_dir / "checkpoints" / "last.pt").is_file()
    # the jobs' console lines interleave: each carries its job's label (Hydra's own are [HYDRA])
    ours = [line for line in result.stdout.splitlines() if "[HYDRA]" not in line
            and not line.startswith(("rlrun: sweep done", f"  {sweep}"))]
    jobs = [(algo, seed) for algo in ("ppo", "a2c") for seed in (0, 1)]  # Hydra's numbering
    labels = {job_label(num, next(d.name for d in dirs if f"algo={algo}," in d.name
                                  and f"seed={seed}," in d.name))
              for num, (algo, seed) in enumerate(jobs)}
    by_label = {label: [line for line in ours if line.startswith(f"{label} ")] for label in labels}
    assert sum(map(len, by_label.values())) == len(ours), ours
    for label, lines in by_label.items():
        assert lines[0] == f"{label} rlrun: training" and "Finished at step 256" in lines[-1], lines


@pytest.mark.slow
def test_optuna_search_repeats_seeds_per_trial_and_continues_its_study(tmp_path):
    optuna = pytest.importorskip("optuna")

    sweep = tmp_path / "sweep"
    args = ["hparams_search=ppo_optuna", "hparams_search.seeds=[0,1]", "hydra.sweeper.n_trials=3",
            "algo.num_minibatches=2", *TINY, f"hydra.sweep.dir={sweep}"]
    result = rlrun(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (sweep / "optuna.db").is_file()
    study = optuna.load_study(study_name="ppo", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert len(study.trials) == 3
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    job_dirs = sorted({d.parent for d in run_dirs(sweep)})
    assert len(job_dirs) == 3
    for job_dir in job_dirs:
        assert sorted(p.name for p in job_dir.glob("seed_*")) == ["seed_0", "seed_1"]
        assert OmegaConf.load(job_dir / "seed_1" / ".hydra" / "config.yaml").seed == 1
    means = [statistics.fmean(final_return(job_dir / f"seed_{s}") for s in (0, 1)) for job_dir in job_dirs]
    assert sorted(trial.value for trial in study.trials) == pytest.approx(sorted(means))

    again = rlrun(*args, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="ppo", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert len(study.trials) == 4


def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    result = rlrun("-m", "hydra/launcher=submitit_local", "algo=ppo", "seed=0,1", *TINY,
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dirs = run_dirs(sweep)
    assert [d.name.rsplit("seed=", 1)[1][0] for d in dirs] == ["0", "1"]
    assert all((d / "checkpoints" / "last.pt").is_file() for d in dirs)
    assert (sweep / ".submitit").is_dir()


def test_ray_launcher_runs_a_two_job_sweep_on_its_own_instance(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the Ray launcher is the [ray] extra")
    sweep = tmp_path / "sweep"
    result = rlrun("-m", "hydra/launcher=ray", "algo=ppo", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(run_dirs(sweep)) == 2


def _pids_with(fragment: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            if entry.name.isdigit() and fragment in command:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the submitit job process through /proc")
def test_submitit_requeues_a_preempted_job_which_resumes_from_its_checkpoint(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from rlrun.run.checkpoint_files import load_checkpoint

    sweep = tmp_path / "sweep"
    exe = Path(sys.executable).parent / "rlrun"
    args = ["-m", "hydra/launcher=submitit_local", "algo=ppo", "total_timesteps=20000", *TINY[1:],
            f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([str(exe), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    metrics = []
    while time.time() < deadline and not (metrics and metrics[0].stat().st_size > 2000):
        time.sleep(0.5)
        metrics = list(sweep.rglob("metrics.jsonl"))
    (job,) = _pids_with(f"submitit.core._submit {sweep}")
    os.kill(job, signal.SIGUSR2)
    _stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    run_dir = metrics[0].parent
    log = (run_dir / "train.log").read_text()
    submitit_log = "".join(p.read_text() for p in sorted((sweep / ".submitit").rglob("*_log.*")))
    assert "SIGUSR2 at step" in submitit_log and "Requeued job" in submitit_log, submitit_log
    assert "deprecated" not in submitit_log
    stopped_at = int(submitit_log.split("SIGUSR2 at step ")[1].split(":")[0])
    assert 0 < stopped_at < 20000
    assert f"at step {stopped_at}" in log.split("Resuming from")[1].splitlines()[0]
    assert load_checkpoint(run_dir)["global_step"] >= 20000
