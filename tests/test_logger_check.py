"""Remote loggers that cannot be reached: refused at start in seconds with the fix
(`logger.on_failure=fail`), or left out once (`continue`); a stop signal during their set-up is
honoured within seconds, and a server that fails later costs one short wait."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SMALL_RUN, TINY_RUN, one_line_error, rlrun


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server():
    """A local port that accepts connections and never answers (a stalled server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def healthy_then_failing_server():
    """An HTTP server whose /health answers 200 and whose every other request answers 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_an_unreachable_mlflow_server_is_refused_at_start_in_one_line(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = rlrun(*SMALL_RUN, "logger=mlflow", f"logger.mlflow_uri={uri}", cwd=tmp_path)
    line = one_line_error(result)
    assert time.monotonic() - started < 30  # MLflow's own retries take minutes
    assert f"logger.mlflow_uri={uri} does not answer" in line
    assert "logger.on_failure=continue" in line
    assert not (tmp_path / "outputs").exists()


def test_wandb_online_without_an_api_key_is_refused_with_the_offline_hint(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env.update(WANDB_MODE="online", NETRC=str(tmp_path / "no-netrc"), HOME=str(tmp_path))
    exe = Path(sys.executable).parent / "rlrun"
    result = subprocess.run([str(exe), *SMALL_RUN, "logger=wandb"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=env, check=False)
    line = one_line_error(result)
    assert "API key" in line and "wandb login" in line and "WANDB_MODE=offline" in line
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_on_failure_continue_trains_without_the_unreachable_logger_and_says_so(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    result = rlrun(*SMALL_RUN, "logger=mlflow", f"logger.mlflow_uri={uri}", "logger.on_failure=continue",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"logger.mlflow_uri={uri} does not answer" in log
    assert "continuing without it (logger.on_failure=continue)" in log
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_bad_on_failure_value_names_the_choices(tmp_path):
    line = one_line_error(rlrun(*SMALL_RUN, "logger.on_failure=maybe", cwd=tmp_path))
    assert "logger.on_failure=maybe must be fail or continue" in line


@pytest.mark.slow
def test_sigterm_while_a_logger_is_being_reached_stops_the_run_within_seconds(tmp_path, silent_server):
    exe = Path(sys.executable).parent / "rlrun"
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(exe), "total_timesteps=1000000", *TINY_RUN, "logger=mlflow", "logger.on_failure=continue",
         f"logger.mlflow_uri=http://127.0.0.1:{silent_server}", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        for line in process.stdout:  # the start panel: the run's signal handlers are in place
            if "loggers" in line:
                break
        time.sleep(1.0)  # now the health check of the silent server is waiting
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = process.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        process.kill()
    assert waited < 8, waited
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    stops = [line for line in err.splitlines() if "SIGTERM" in line]
    assert len(stops) == 1 and stops[0].startswith("rlrun: SIGTERM"), err
    assert f"rlrun resume={run_dir}" in stops[0]
    log = (run_dir / "train.log").read_text()
    assert "continuing without it" in log and "SIGTERM" in log
    assert (run_dir / "checkpoints" / "last.pt").exists()


def test_a_server_that_fails_after_the_start_check_costs_one_short_wait(
    train_run, tmp_path, healthy_then_failing_server, monkeypatch
):
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    train_run(["logger.mlflow=true", f"logger.mlflow_uri={healthy_then_failing_server}",
               "total_timesteps=256", *TINY_RUN], tmp_path)
    assert time.monotonic() - started < 30  # MLflow's default retries of a 503 take minutes
    assert "mlflow logging failed" in (tmp_path / "train.log").read_text()
