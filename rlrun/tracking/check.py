"""Whether the remote loggers a run asked for (wandb online, an MLflow tracking server) can be
reached, found out in seconds before training: their own clients retry for minutes.

`logger.on_failure=fail` (the default) refuses the run with the problem and its fix;
`continue` trains without that logger and says so once.
"""

from __future__ import annotations

import netrc
import os
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from rlrun.config import LoggerConfig

CONNECT_TIMEOUT = 3.0
"""Longest wait for a logger's host to answer at start (seconds)."""
OFFLINE_MODES = ("offline", "disabled", "dryrun")
"""Values of WANDB_MODE under which wandb needs no network."""


def unreachable(cfg: LoggerConfig) -> dict[str, str]:
    """The remote loggers of `cfg` that cannot be used now, each with what is wrong and its fix."""
    problems = {}
    if cfg.mlflow and cfg.mlflow_uri and cfg.mlflow_uri.startswith(("http://", "https://")):
        problem = _mlflow_problem(cfg.mlflow_uri)
        if problem:
            problems["mlflow"] = problem
    if cfg.wandb and os.environ.get("WANDB_MODE", "online") not in OFFLINE_MODES:
        problem = _wandb_problem()
        if problem:
            problems["wandb"] = problem
    return problems


def _mlflow_problem(uri: str) -> str | None:
    """None when the tracking server at `uri` answers its health check within the timeout."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=CONNECT_TIMEOUT):
            return None
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code} from {uri}/health"
    except (OSError, ValueError) as error:  # refused, timed out, unknown host, bad URL
        cause = getattr(error, "reason", error)
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return (f"logger.mlflow_uri={uri} does not answer ({reason}): start its tracking server, or "
            "point logger.mlflow_uri at a running one (null: mlruns/ in the run dir)")


def _wandb_problem() -> str | None:
    """None when wandb has an API key and its host accepts a connection within the timeout."""
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    parts = urlsplit(base)
    host = parts.hostname or base
    offline = "or log offline with WANDB_MODE=offline (upload later with wandb sync)"
    if not os.environ.get("WANDB_API_KEY") and not _netrc_has(host):
        return f"logger.wandb needs a W&B API key: run wandb login (or set WANDB_API_KEY), {offline}"
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        return (f"logger.wandb cannot reach {host}:{port} ({error.strerror or error}): check the "
                f"network, {offline}")
    return None


def _netrc_has(host: str) -> bool:
    """Whether ~/.netrc (or $NETRC) holds a login for `host`, where `wandb login` puts the key."""
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
