"""Bad input through the command line: one line naming the fix, a non-zero exit, no traceback,
and nothing already written in the run dir lost."""

import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import SMALL_RUN, TINY_RUN, one_line_error, rlrun, run_command

from rlrun.run.checkpoint_files import load_checkpoint


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run dir and its bytes (the hydra dir is rewritten by each launch)."""
    return {
        str(path.relative_to(run_dir)): path.read_bytes()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and ".hydra" not in path.parts and path.name != "train.log"
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny PPO CartPole run: its dir and a snapshot of its files."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = rlrun(*SMALL_RUN, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["algo=dqn", "env=Pendulum-v1"], "algo=sac"),
        (["algo=sac", "env=CartPole-v1"], "Discrete"),
        (["algo=sac", "env=Pendulum-v1", "compile=true"], "compile=true applies to algo="),
        (["algo=sarsa", "env=MountainCarContinuous-v0"], "continuous"),
        (["algo.clip_coef=0"], "algo.clip_coef"),
        (["algo.gamma=1.5"], "algo.gamma"),
        (["env.num_envs=0"], "env.num_envs"),
        (["divergence.on_nan=ignore"], "divergence.on_nan"),
        (["resume.allow_config_change=maybe"], "resume.allow_config_change"),
        (["logger=nope"], "unknown logger"),
        (["optimizer=5"], "optimizer takes the name of a config (choose from adam, adamw"),
        (["hparams_search=null"], "write ~hparams_search"),
        (["algo="], "algo takes the name of a config (choose from a2c, bc"),
        (["callbacks={_target_:rlrun.callbacks.Echo}"],
         "callbacks takes a list: write callbacks=[{_target_:rlrun.callbacks.Echo}]"),
    ],
)
def test_more_bad_values_get_one_line_and_exit_2(tmp_path, args, fragment):
    assert fragment in one_line_error(rlrun(*args, cwd=tmp_path))
    assert not (tmp_path / "outputs").exists()


def test_unwritable_output_dir(tmp_path):
    (tmp_path / "a_file").write_text("")
    line = one_line_error(rlrun(*SMALL_RUN, f"hydra.run.dir={tmp_path}/a_file/run", cwd=tmp_path))
    assert "not a directory" in line and "hydra.run.dir" in line


@pytest.mark.parametrize("kind", ["truncated", "foreign", "malicious"])
def test_bad_checkpoint_files_are_refused(tmp_path, finished_run, kind):
    path = tmp_path / "given.pt"
    if kind == "truncated":
        path.write_bytes((finished_run / "checkpoints" / "last.pt").read_bytes()[:2000])
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    else:
        marker = tmp_path / "executed"

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        path.write_bytes(pickle.dumps({"format": "rlrun-checkpoint-1", "x": Payload()}))
    line = one_line_error(rlrun(*SMALL_RUN, f"resume={path}", cwd=tmp_path))
    expected = {"truncated": "truncated or corrupt", "foreign": "not an rlrun checkpoint", "malicious": "refused"}
    assert expected[kind] in line
    if kind == "malicious":
        assert not marker.exists()


def test_resume_with_a_changed_config_names_the_keys_and_keeps_the_run(finished_run, tmp_path):
    before = snapshot(finished_run)
    args = [*SMALL_RUN, f"hydra.run.dir={finished_run}"]
    line = one_line_error(rlrun(*args, "algo.clip_coef=0.1", "algo.ent_coef=0.02", cwd=tmp_path))
    assert "algo.clip_coef: 0.2 -> 0.1" in line and "algo.ent_coef: 0.01 -> 0.02" in line
    assert "drop algo.clip_coef=0.1 algo.ent_coef=0.02 to continue" in line  # only the typed keys
    assert "resume.allow_config_change=true" in line
    assert snapshot(finished_run) == before

    line = one_line_error(rlrun(*args, "algo=a2c", cwd=tmp_path))
    assert "written by algo=ppo" in line
    line = one_line_error(
        rlrun(*args, "network.hidden_sizes=[32]", "resume.allow_config_change=true", cwd=tmp_path)
    )
    assert "does not fit this config" in line
    assert snapshot(finished_run) == before


def test_allowed_config_change_resumes_and_says_what_changed(finished_run, tmp_path):
    copy = tmp_path / "run"
    for name, data in snapshot(finished_run).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    args = ["total_timesteps=512", *TINY_RUN, f"hydra.run.dir={copy}", "algo.ent_coef=0.0"]
    result = rlrun(*args, "resume.allow_config_change=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "algo.ent_coef: 0.01 -> 0.0" in result.stdout + result.stderr
    assert load_checkpoint(copy)["global_step"] == 512


def test_full_disk_keeps_the_previous_checkpoint(finished_run, tmp_path):
    copy = tmp_path / "run"
    for name, data in snapshot(finished_run).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    (copy / "checkpoints" / ".last.pt.tmp").symlink_to("/dev/full")  # every write: ENOSPC
    result = rlrun("total_timesteps=512", *TINY_RUN, f"hydra.run.dir={copy}", cwd=tmp_path)
    line = one_line_error(result)
    assert "No space left on device" in line and "previous checkpoint is intact" in line
    assert load_checkpoint(copy)["global_step"] == 256


def test_diverging_training_stops_naming_step_and_optimizer(tmp_path):
    run_dir = tmp_path / "run"
    args = ["total_timesteps=2048", *TINY_RUN, "optimizer.name=sgd", "optimizer.lr=1e30", f"hydra.run.dir={run_dir}"]
    line = one_line_error(rlrun(*args, cwd=tmp_path), exit_code=1)
    assert "diverged after step" in line and "non-finite gradient in optimizer" in line
    assert "divergence.on_nan=skip_update" in line
    assert (run_dir / "metrics.jsonl").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["algo.lrr=1"], "did you mean optimizer.lr?"),
        (["+algo.lrr=1"], "did you mean optimizer.lr?"),  # + adds no key a schema lacks
        (["algo.clip_cof=0.1"], "did you mean algo.clip_coef"),
        (["eval.episode=3"], "did you mean eval.episodes"),
        (["algo.lr=1e-3"], "did you mean optimizer.lr?"),
        (["algo.learning_rate=1e-3"], "did you mean optimizer.lr?"),
        (["algo.n_steps=64"], "did you mean algo.num_steps"),
        (["algo.learning_starts=100"], "for algo=ppo: it is a key of algo=ddpg, dqn, sac, td3"),
        (["network.layers=3"], "for network=mlp: it is a key of network=lm"),
        (["+foo=1"], "unknown key 'foo'"),
        ([str(Path(__file__).parent)], "rlrun resume="),
        (["resume=/tmp", "-m"], "hydra.sweep.dir"),
    ],
)
def test_typos_and_habits_of_other_libraries_are_refused_with_the_key_to_use(tmp_path, args, fragment):
    assert fragment in one_line_error(rlrun(*args, cwd=tmp_path))
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [([], "rlrun-eval needs a checkpoint: rlrun-eval <run dir or checkpoint file>"),
     (["eval.render=true"], "did you mean eval.video? (`rlrun-eval --help` lists its keys)")],
)
def test_rlrun_eval_mistakes_get_one_line(tmp_path, finished_run, args, fragment):
    given = [str(finished_run), *args] if args else []
    assert fragment in one_line_error(run_command("rlrun-eval", *given, cwd=tmp_path))


def test_step_counts_take_integral_floats_and_underscores(tmp_path):
    result = rlrun("total_timesteps=2e5", "eval.every_steps=1_000", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "total_timesteps: 200000" in result.stdout and "every_steps: 1000" in result.stdout


def test_a_missing_extra_names_the_rlrun_extra(monkeypatch):
    import importlib.util

    from rlrun.config import ConfigError
    from rlrun.extras import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moviepy" else real(name, *a))
    with pytest.raises(ConfigError, match=r"eval.video=true needs moviepy, which is not installed: "
                                          r"pip install -e '\.\[video\]'"):
        require("moviepy", "eval.video=true")


def test_off_policy_algorithms_refuse_normalised_replay(tmp_path):
    line = one_line_error(rlrun("algo=td3", "env=Pendulum-v1", "env.normalize_reward=true", cwd=tmp_path))
    assert "algo=td3 learns from a replay buffer" in line and "env.normalize_reward=false" in line


def test_resume_with_a_budget_below_the_checkpoints_step_is_refused(finished_run, tmp_path):
    before = snapshot(finished_run)
    line = one_line_error(rlrun(*TINY_RUN, "total_timesteps=100", f"resume={finished_run}", cwd=tmp_path))
    assert "total_timesteps=100 is below step" in line and "to extend it" in line
    assert snapshot(finished_run) == before
