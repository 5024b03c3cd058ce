from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils.tensorboard
from conftest import read_metrics

from rlrun.cli.sweep_jobs import JOB_LABEL_CHARS, job_label, sweep_name
from rlrun.config import LoggerConfig
from rlrun.tracking import console as console_log
from rlrun.tracking.logger import ETA_AFTER_S, Logger, Status, spread_text


def _cfg(**overrides) -> LoggerConfig:
    return LoggerConfig(**{"console": False, **overrides})


def test_jsonl_records_step_time_and_float_metrics(tmp_path: Path) -> None:
    logger = Logger(_cfg(), tmp_path, 100, {})
    logger.log({"train/loss": torch.tensor(0.25), "rollout/ep_return_mean": np.float32(3.5)}, 8)
    logger.log({"eval/return_mean": 7}, 16)
    logger.close()
    logger.close()  # idempotent
    first, second = read_metrics(tmp_path)
    assert first["step"] == 8 and first["train/loss"] == 0.25
    assert first["rollout/ep_return_mean"] == 3.5
    assert second == {"step": 16, "time": second["time"], "eval/return_mean": 7.0}
    assert isinstance(second["eval/return_mean"], float)
    assert 0.0 <= first["time"] <= second["time"]


def test_resume_drops_steps_after_start_step_and_a_truncated_line(tmp_path: Path) -> None:
    logger = Logger(_cfg(), tmp_path, 100, {})
    for step in range(6):
        logger.log({"x": step}, step)
    logger.close()
    with (tmp_path / "metrics.jsonl").open("a") as file:
        file.write('{"step": 6, "time": 1.0, "x"')  # a crash mid-write
    resumed = Logger(_cfg(), tmp_path, 100, {}, start_step=3)
    resumed.log({"x": 4}, 4)
    resumed.close()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    assert records[-1]["time"] >= records[-2]["time"]  # wall time continues from the kept lines
    assert not list(tmp_path.glob("*.tmp"))


def test_tensorboard_writes_events_under_tb(tmp_path: Path) -> None:
    logger = Logger(_cfg(tensorboard=True), tmp_path, 100, {})
    logger.log({"train/loss": 1.0}, 10)
    logger.close()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_wandb_offline_creates_run_and_resumes_same_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rlrun")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = _cfg(wandb=True, jsonl=False)
    logger = Logger(cfg, tmp_path, 100, {"seed": 1}, run_name="test")
    logger.log({"train/loss": 1.0}, 10)
    logger.close()
    assert logger.wandb_id and (tmp_path / "wandb").is_dir()
    resumed = Logger(cfg, tmp_path, 100, {"seed": 1}, start_step=10, wandb_id=logger.wandb_id)
    resumed.log({"train/loss": 0.5}, 20)
    resumed.close()
    assert resumed.wandb_id == logger.wandb_id
    assert not [r for r in caplog.records if "logging failed" in r.getMessage()]
    off = Logger(_cfg(), tmp_path / "off", 100, {})
    off.close()
    assert off.wandb_id is None


class _BrokenWriter:
    def __init__(self, *args, **kwargs) -> None:
        self.file_writer = self

    def add_text(self, *args, **kwargs) -> None:
        pass

    def add_summary(self, *args, **kwargs) -> None:
        pass

    def add_scalar(self, *args, **kwargs) -> None:
        raise OSError("disk full")


def _raise_at_init(*args, **kwargs) -> None:
    raise OSError("no space left")


@pytest.mark.parametrize("writer", [_raise_at_init, _BrokenWriter], ids=["init", "log"])
def test_failing_backend_is_reported_once_and_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, writer
) -> None:
    monkeypatch.setattr(torch.utils.tensorboard, "SummaryWriter", writer)
    caplog.set_level(logging.INFO, logger="rlrun")
    logger = Logger(_cfg(tensorboard=True), tmp_path, 100, {})
    for step in range(3):
        logger.log({"train/loss": 1.0}, step)
    logger.close()
    failures = [r.getMessage() for r in caplog.records if "logging failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].startswith("tensorboard logging failed (OSError: ")
    assert failures[0].endswith("; continuing without it")
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]


def test_console_without_terminal_prints_one_short_status_line_per_interval_also_in_train_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    logger = Logger(_cfg(console=True, every_steps=10), tmp_path, 40, {})
    logger.message("before training")  # shown at once, written to train.log when it opens
    for step in range(0, 41, 4):
        logger.log({"rollout/ep_return_mean": step / 2, "train/loss": 0.123456, "time/sps": 1000.0}, step)
        logger.progress(step)
    logger.log({"eval/return_mean": 500.0, "eval/return_std": 0.0}, 40)
    logger.message("checkpoint saved")
    logger.close()
    lines = capsys.readouterr().out.splitlines()
    status = [line for line in lines if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in status] == [
        "step 12/40 (30%)", "step 20/40 (50%)", "step 32/40 (80%)",
        "step 40/40 (100%)"]  # the last once, at the end, with the final evaluation
    assert status[0] == "step 12/40 (30%) | 1,000 sps | return 6"  # no ETA in the first seconds
    assert status[-1] == "step 40/40 (100%) | 1,000 sps | return 20 | eval 500 ± 0 @ 40"
    assert all(len(line) < 120 for line in status)
    assert "checkpoint saved" in lines and "before training" in lines
    assert not any("\x1b[" in line for line in lines)  # no escape codes, no progress bar
    logged = [line.split("] ", 1)[1] for line in (tmp_path / "train.log").read_text().splitlines()]
    assert logged == ["before training", *status[:-1], "checkpoint saved", status[-1]]


def test_eta_waits_for_the_speed_after_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(console_log, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    status = Status(total_steps=10_000, start_step=0)
    status.measure_from = 1_000  # e.g. SAC's learning_starts: random actions, 1,000 steps/s
    status.record({"time/sps": 1000.0}, 0)
    clock[0], status.step = 1.0, 1_000
    status.record({}, 1_000)  # updates start: 100 steps/s from here
    assert status.eta() is None and "ETA" not in status.line()
    clock[0], status.step = 1.0 + ETA_AFTER_S, 1_000 + int(100 * ETA_AFTER_S)
    assert status.eta() == pytest.approx((10_000 - status.step) / 100)  # not at 1,000 steps/s
    status.step = 10_000
    assert status.eta() is None  # done: no time left to show


@pytest.mark.parametrize("mean, spread, shown", [
    (0.91, 1.11e-16, "0"), (-930.27, 349.31, "349.3"), (500.0, 0.0, "0"), (75.3, 12.47, "12.47"),
    (1234.5, 12.345, "12"), (0.0, 0.5, "0.5"),
])
def test_eval_spread_has_the_means_decimals_and_float_noise_reads_zero(mean, spread, shown):
    assert spread_text(mean, spread) == shown


def test_a_failing_back_end_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = Logger(_cfg(console=True), tmp_path, 10, {})
    logger.open()

    def broken(*args):
        raise OSError("disk gone")

    for _ in range(3):
        logger._guarded("tensorboard", broken)
    logger.close()
    printed = capsys.readouterr().out
    assert printed.count("tensorboard logging failed") == 1
    assert (tmp_path / "train.log").read_text().count("tensorboard logging failed") == 3


def test_nothing_is_written_before_the_first_event(tmp_path: Path) -> None:
    logger = Logger(_cfg(tensorboard=True), tmp_path / "run", 100, {})
    logger.message("set-up notice")
    assert not (tmp_path / "run").exists()
    logger.log({"x": 1.0}, 1)
    logger.close()
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"metrics.jsonl", "train.log", "tb"}


def test_tensorboard_resume_drops_the_events_after_the_checkpoint(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = Logger(_cfg(tensorboard=True), tmp_path, 100, {})
    for step in range(1, 7):
        logger.log({"x": float(step)}, step)
    logger.close()
    resumed = Logger(_cfg(tensorboard=True), tmp_path, 100, {}, start_step=3)
    for step in range(4, 9):
        resumed.log({"x": 10.0 * step}, step)
    resumed.close()
    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    scalars = [(e.step, e.value) for e in accumulator.Scalars("x")]
    assert scalars == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0), (7, 70.0), (8, 80.0)]
    assert not (tmp_path / "tb" / ".resume").exists()


def test_console_on_terminal_shows_progress_bar_and_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich treats the captured stdout as a terminal
    logger = Logger(_cfg(console=True, every_steps=10), tmp_path, 40, {})
    logger.log({"rollout/ep_return_mean": 1.5, "eval/return_mean": 500.0}, 12)
    logger.progress(12)
    logger.message("checkpoint [step 12] saved")
    logger.close()
    out = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", capsys.readouterr().out)
    assert "12/40" in out and "return 1.5" in out and "eval 500" in out
    assert "step 12/40 (30%)" in out and "rollout/ep_return_mean" in out
    assert "checkpoint [step 12] saved" in out  # no rich markup interpretation


def test_a_sweep_jobs_console_lines_carry_its_label_and_train_log_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    label = job_label(3, "algo=a2c,seed=1")
    assert label == "[job 3 algo=a2c,seed=1]"
    logger = Logger(_cfg(console=True, every_steps=10), tmp_path, 20, {}, label=label)
    logger.panel("rlrun: training", [("algo", "a2c"), ("env", "CartPole-v1")])
    for step in (10, 20):
        logger.log({"rollout/ep_return_mean": 1.5, "time/sps": 100.0}, step)
        logger.progress(step)
    logger.message("Finished at step 20")
    logger.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and all(line.startswith(f"{label} ") for line in lines), lines
    assert lines[0] == f"{label} rlrun: training" and f"{label} Finished at step 20" in lines
    logged = (tmp_path / "train.log").read_text()
    assert "rlrun: training" in logged and "[job" not in logged

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # on a terminal: the panel title and the bar
    logger = Logger(_cfg(console=True, every_steps=10), tmp_path / "tty", 20, {}, label=label)
    logger.panel("rlrun: training", [("algo", "a2c")])
    logger.log({"rollout/ep_return_mean": 1.5}, 10)
    logger.progress(10)
    logger.close()
    out = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", capsys.readouterr().out)
    assert f"{label} rlrun: training" in out and f"{label} step 10/20" in out


def test_a_long_job_label_is_cut() -> None:
    label = job_label(12, ",".join(f"algo.key_{i}={i}" for i in range(20)))
    assert label.startswith("[job 12 algo.key_0=0,") and label.endswith("…]")
    assert len(label) == len("[job 12 ]") + JOB_LABEL_CHARS


# ----- wandb: group, name, tags, notes -----------------------------------------------------------
def _wandb_run_records(run_dir: Path) -> list:
    """The run records (id, group, name, tags, notes) that wandb wrote into each offline run's
    transaction log under run_dir/wandb, oldest run first.

    The log is a sequence of 32 KiB blocks after a 7-byte header; each chunk has a 7-byte header
    (CRC, little-endian length, kind: 1 whole record, 2 first, 3 middle, 4 last part)."""
    from wandb.proto import wandb_internal_pb2

    found = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        data, pos, chunk = path.read_bytes(), 7, b""
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
                pos += 32768 - pos % 32768
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if kind == 0:
                break
            chunk += data[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):
                record = wandb_internal_pb2.Record.FromString(chunk)
                chunk = b""
                if record.WhichOneof("record_type") == "run":
                    found.append(record.run)
    return found


def test_wandb_run_gets_group_name_tags_and_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = _cfg(wandb=True, jsonl=False, wandb_name="ppo-lr3e-4", wandb_tags=["baseline", "v2"],
               wandb_notes="lr scan")
    logger = Logger(cfg, tmp_path / "named", 100, {}, run_name="run-dir-name", group="2026-11-22/10-00-00")
    logger.log({"x": 1.0}, 1)
    logger.close()
    default = Logger(_cfg(wandb=True, jsonl=False, wandb_group="mine"), tmp_path / "default", 100, {},
                     run_name="run-dir-name", group="2026-11-22/10-00-00")
    default.log({"x": 1.0}, 1)
    default.close()
    (named,) = _wandb_run_records(tmp_path / "named")
    assert (named.run_id, named.run_group, named.display_name) == (
        logger.wandb_id, "2026-11-22/10-00-00", "ppo-lr3e-4")
    assert list(named.tags) == ["baseline", "v2"] and named.notes == "lr scan"
    (other,) = _wandb_run_records(tmp_path / "default")
    assert (other.run_group, other.display_name, list(other.tags), other.notes) == (
        "mine", "run-dir-name", [], "")


def test_sweep_name_is_the_sweep_dir_below_multirun_or_its_own_name() -> None:
    assert sweep_name("outputs/multirun/2026-11-22/10-00-00") == "2026-11-22/10-00-00"
    assert sweep_name("/abs/outputs/multirun/2026-11-22/10-00-00") == "2026-11-22/10-00-00"
    assert sweep_name("outputs/lr_scan") == "lr_scan"
    assert sweep_name("/scratch/sweeps/lr_scan") == "lr_scan"


# ----- TensorBoard: config text and HParams ------------------------------------------------------
def _hparams_sessions(log_dir: Path) -> list:
    """Every HParams session (config values) written in the event files of `log_dir`."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    sessions = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    assert data.WhichOneof("data") == "session_start_info"
                    sessions.append(data.session_start_info.hparams)
    return sessions


def test_tensorboard_writes_config_text_and_hparams_and_resume_replaces_them(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = {"seed": 1, "total_timesteps": 100, "algo": {"name": "ppo", "clip_coef": 0.2,
              "target_kl": None, "hidden": [64, 64], "norm_adv": True}}
    logger = Logger(_cfg(tensorboard=True), tmp_path, 100, config)
    logger.log({"eval/return_mean": 10.0}, 50)
    logger.log({"eval/return_mean": 20.0}, 100)
    logger.close()
    resumed_config = {**config, "total_timesteps": 300}
    resumed = Logger(_cfg(tensorboard=True), tmp_path, 300, resumed_config, start_step=100)
    resumed.log({"eval/return_mean": 30.0}, 300)
    resumed.close()
    (session,) = _hparams_sessions(tmp_path / "tb")  # the stopped attempt's was dropped
    assert {key: session[key].WhichOneof("kind") for key in session} == {
        "seed": "number_value", "total_timesteps": "number_value", "algo.name": "string_value",
        "algo.clip_coef": "number_value", "algo.target_kl": "string_value",
        "algo.hidden": "string_value", "algo.norm_adv": "bool_value"}
    assert session["total_timesteps"].number_value == 300 and session["algo.name"].string_value == "ppo"
    assert session["algo.clip_coef"].number_value == 0.2 and session["algo.norm_adv"].bool_value
    assert session["algo.target_kl"].string_value == "null"
    assert session["algo.hidden"].string_value == "[64, 64]"
    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    (text,) = accumulator.Tensors("config/text_summary")
    assert "total_timesteps: 300" in text.tensor_proto.string_val[0].decode()
    assert [(e.step, e.value) for e in accumulator.Scalars("eval/return_mean")] == [
        (50, 10.0), (100, 20.0), (300, 30.0)]  # the HParams metric: its last value


# ----- MLflow -------------------------------------------------------------------------------------
TINY = ["algo.num_steps=32", "eval.episodes=2", "eval.num_envs=2", "eval.every_steps=0"]


def _mlflow_client(run_dir: Path):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=(run_dir / "mlruns").as_uri())


@pytest.mark.slow
def test_mlflow_run_continues_on_resume_with_params_metrics_and_artifacts(train_run, tmp_path: Path) -> None:
    from rlrun.run.checkpoint_files import load_checkpoint

    train_run([*TINY, "logger=mlflow", "total_timesteps=256"], tmp_path)
    first_id = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["mlflow_id"]
    train_run([*TINY, "logger=mlflow", "total_timesteps=512"], tmp_path)  # same dir: resumes, extends
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["mlflow_id"] == first_id
    client = _mlflow_client(tmp_path)
    (experiment,) = [e for e in client.search_experiments() if e.name == "rlrun"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == first_id and run.info.status == "FINISHED"
    assert run.info.run_name == tmp_path.name
    params = run.data.params
    assert params["algo.name"] == "ppo" and params["algo.num_steps"] == "32" and params["seed"] == "0"
    assert params["total_timesteps"] == "256" and run.data.tags["resumed.total_timesteps"] == "512"
    evals = [(m.step, m.value) for m in client.get_metric_history(first_id, "eval/return_mean")]
    assert [step for step, _ in evals] == [256, 512]
    losses = [m.step for m in client.get_metric_history(first_id, "train/policy_loss")]
    assert losses == sorted(losses) and losses[0] <= 256 < losses[-1] == 512  # one axis, continued
    artifacts = {a.path for a in client.list_artifacts(first_id)} | {
        a.path for a in client.list_artifacts(first_id, "checkpoints")}
    assert {"eval_summary.json", "checkpoints/last.pt"} <= artifacts
    summary = json.loads(Path(client.download_artifacts(first_id, "eval_summary.json", str(tmp_path / "dl")))
                         .read_text())
    assert summary["global_step"] == 512 and summary["eval/return_mean"] == evals[-1][1]
    assert len(summary["returns"]) == summary["episodes"] == 2


def test_a_raising_logger_is_reported_once_as_a_warning_and_training_finishes(
    train_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rlrun.tracking.mlflow_sink import MlflowSink

    calls = []

    def broken_log(self, metrics, step, elapsed) -> None:
        calls.append(step)
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(MlflowSink, "log", broken_log)
    caplog.set_level(logging.INFO, logger="rlrun")
    result = train_run([*TINY, "logger=mlflow", "total_timesteps=256"], tmp_path)
    assert result.global_step == 256
    failures = [r for r in caplog.records if "logging failed" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in failures] == [(logging.WARNING,
        "mlflow logging failed (ConnectionError: tracking server unreachable); continuing without it")]
    assert len(calls) == 1  # switched off after its first failure
    assert read_metrics(tmp_path)[-1]["step"] == 256  # the other back-ends got every event
    assert "mlflow logging failed" in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "mlflow"])
def test_a_logger_without_its_package_is_refused_in_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    from rlrun.cli import train_command as cli
    from rlrun.cli.compose import compose_checked

    cli._setup()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None if module == name else real(module, *a))
    compose_checked("train", ["logger=default"])  # the default loggers need no extra
    with pytest.raises(SystemExit) as exit_info:
        compose_checked("train", [f"logger={name}"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"rlrun: logger.{name}=true needs {name}, which is not installed: "
                           f"pip install -e '.[{name}]'")


# ----- a sweep and its resume through the command line ---------------------------------------------
def _rlrun(*args: str, cwd: Path) -> None:
    exe = Path(sys.executable).parent / "rlrun"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run([str(exe), *args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr


def _mlflow_run(run_dir: Path):
    """The one MLflow run in the run dir's file store."""
    client = _mlflow_client(run_dir)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return run


@pytest.mark.slow
def test_a_sweeps_jobs_share_a_wandb_group_and_resume_keeps_it_and_the_mlflow_run(tmp_path: Path) -> None:
    sweep = tmp_path / "lr_scan"
    _rlrun("-m", "seed=0,1", *TINY, "total_timesteps=128", "logger=[wandb,mlflow]", "logger.console=false",
           f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    jobs = [next(sweep.glob(f"*seed={seed},*")) for seed in (0, 1)]
    assert [[run.run_group for run in _wandb_run_records(job)] for job in jobs] == [["lr_scan"], ["lr_scan"]]
    assert [_mlflow_run(job).data.tags["rlrun.cli.sweep_jobs"] for job in jobs] == ["lr_scan", "lr_scan"]
    first_id = _mlflow_run(jobs[0]).info.run_id
    _rlrun(f"resume={jobs[0]}", "total_timesteps=256", cwd=tmp_path)
    first, again = _wandb_run_records(jobs[0])
    assert again.run_id == first.run_id and again.run_group == "lr_scan"
    run = _mlflow_run(jobs[0])
    assert run.info.run_id == first_id and run.info.status == "FINISHED"
    history = _mlflow_client(jobs[0]).get_metric_history(first_id, "eval/return_mean")
    assert [m.step for m in history] == [128, 256]
