from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils.tensorboard

from rlrun.config import LoggerConfig
from rlrun.logger import Logger


def _cfg(**overrides) -> LoggerConfig:
    return LoggerConfig(**{"console": False, **overrides})


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_jsonl_records_step_time_and_float_metrics(tmp_path: Path) -> None:
    logger = Logger(_cfg(), tmp_path, 100, {})
    logger.log({"train/loss": torch.tensor(0.25), "rollout/ep_return_mean": np.float32(3.5)}, 8)
    logger.log({"eval/return_mean": 7}, 16)
    logger.close()
    logger.close()  # idempotent
    first, second = _records(tmp_path)
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
    records = _records(tmp_path)
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    assert records[-1]["time"] >= records[-2]["time"]  # wall time continues from the kept lines
    assert not list(tmp_path.glob("*.tmp"))


def test_tensorboard_writes_events_under_tb(tmp_path: Path) -> None:
    logger = Logger(_cfg(tensorboard=True), tmp_path, 100, {})
    logger.log({"train/loss": 1.0}, 10)
    logger.close()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


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
    assert [r["step"] for r in _records(tmp_path)] == [0, 1, 2]


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
        "step 12/40 (30%)", "step 20/40 (50%)", "step 32/40 (80%)", "step 40/40 (100%)",
        "step 40/40 (100%)"]  # the last again at the end, with the final evaluation
    assert status[0] == "step 12/40 (30%) | 1,000 sps | ETA 0s | return 6"
    assert status[-1] == "step 40/40 (100%) | 1,000 sps | return 20 | eval 500 ± 0 @ 40"
    assert all(len(line) < 120 for line in status)
    assert "checkpoint saved" in lines and "before training" in lines
    assert not any("\x1b[" in line for line in lines)  # no escape codes, no progress bar
    logged = [line.split("] ", 1)[1] for line in (tmp_path / "train.log").read_text().splitlines()]
    assert logged == ["before training", *status[:-1], "checkpoint saved", status[-1]]


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
