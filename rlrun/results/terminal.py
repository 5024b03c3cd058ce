"""The rich console of printed tables (`rlrun-report`, `rlrun-eval`)."""

from __future__ import annotations

import os

from rich.console import Console

PIPE_WIDTH = 1000
"""Console width (characters) when stdout is not a terminal and COLUMNS is not set: wide enough
that a table in a pipe, a file or a CI log keeps every cell whole."""


def table_console() -> Console:
    """A rich console for tables: a terminal's own width, COLUMNS when set, else `PIPE_WIDTH`."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console
    return Console(width=PIPE_WIDTH)
