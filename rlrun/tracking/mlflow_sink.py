"""The MLflow back-end of `rlrun.tracking.logger`: one MLflow run per rlrun run, continued on resume.

Params are the resolved config by dotted key, metrics go on the global env step axis, and the
final checkpoint and the final evaluation's summary are the run's artifacts. Without
`logger.mlflow_uri` the store is `mlruns/` in the run dir (an MLflow file store, which MLflow 3
accepts only with MLFLOW_ALLOW_FILE_STORE=true: set here for that store). MLflow's metric
history cannot be rewritten, so on resume the events the stopped process wrote after its last
checkpoint stay in it: those steps appear twice there (metrics.jsonl and tb/ drop them).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rlrun.config import LoggerConfig
from rlrun.config.flat import flatten

MAX_BATCH = 100
"""Params (and metrics) sent per `log_batch` call: MLflow's limit for params."""
MAX_PARAM_CHARS = 6000
"""Longest param value MLflow stores (characters); longer ones are cut."""
SUMMARY_ARTIFACT = "eval_summary.json"
"""Name of the final evaluation's summary among the run's artifacts."""
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
"""MLflow's request settings unless the environment sets them: a server that stops answering
costs one 5 s wait, after which the run goes on without it (MLflow's own defaults retry with
backoff for minutes, stalling training)."""


def store_uri(cfg: LoggerConfig, run_dir: Path) -> str:
    """`logger.mlflow_uri`, or the file store `mlruns/` in the run dir (a file: URI)."""
    return cfg.mlflow_uri or (Path(run_dir) / "mlruns").absolute().as_uri()


def param_values(config: dict) -> dict[str, str]:
    """The config's leaves by dotted key as MLflow param text (null and lists as JSON)."""
    return {key: (value if isinstance(value, str) else json.dumps(value))[:MAX_PARAM_CHARS]
            for key, value in flatten(config).items()}


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[start:start + MAX_BATCH] for start in range(0, len(items), MAX_BATCH)]


class MlflowSink:
    """An MLflow run in experiment `logger.mlflow_experiment`, continued when `run_id` is given.

    A continued run keeps its params (MLflow never changes one); a config value that differs on
    resume (e.g. an extended total_timesteps) is recorded as tag `resumed.<key>`.
    """

    name = "mlflow"

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, config: dict, run_id: str | None, run_name: str,
        group: str | None,
    ) -> None:
        uri = store_uri(cfg, run_dir)
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=uri)
        params = param_values(config)
        if run_id is None:
            experiment = self._client.get_experiment_by_name(cfg.mlflow_experiment)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self._client.create_experiment(cfg.mlflow_experiment))
            tags = {"rlrun.run_dir": str(Path(run_dir).absolute())}
            if group:
                tags["rlrun.cli.sweep_jobs"] = group
            run = self._client.create_run(experiment_id, run_name=run_name or None, tags=tags)
            self.id: str = run.info.run_id
            new, changed = params, {}
        else:
            logged = self._client.get_run(run_id).data.params
            self._client.update_run(run_id, status="RUNNING")
            self.id = run_id
            new = {key: value for key, value in params.items() if key not in logged}
            changed = {key: value for key, value in params.items()
                       if logged.get(key, value) != value}
        for batch in _chunks([Param(key, value) for key, value in new.items()]):
            self._client.log_batch(self.id, params=batch)
        for batch in _chunks([RunTag(f"resumed.{key}", value) for key, value in changed.items()]):
            self._client.log_batch(self.id, tags=batch)
        self._status = "KILLED"
        """How the run ends in MLflow at `close`: FINISHED once `finish` ran, KILLED before
        (stopped; a resume continues it)."""

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        entries = [Metric(key, value, stamp, step) for key, value in metrics.items()]
        for batch in _chunks(entries):
            self._client.log_batch(self.id, metrics=batch)

    def finish(self, summary: dict[str, Any], checkpoint: Path) -> None:
        """Keep `summary` as eval_summary.json and the `checkpoint` file under checkpoints/."""
        self._client.log_dict(self.id, summary, SUMMARY_ARTIFACT)
        self._client.log_artifact(self.id, str(checkpoint), "checkpoints")
        self._status = "FINISHED"

    def close(self) -> None:
        self._client.set_terminated(self.id, self._status)
