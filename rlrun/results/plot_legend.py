"""The legend of rlrun-report's figures: beside the axes while the labels are short, below them,
wrapped, with the figure grown to hold it, once one is long (e.g. a sweep's groups, each named by
every override it varies), so that no label is cut at the figure's edge."""

from __future__ import annotations

import textwrap

SIDE_LABEL_CHARS = 60
"""Longest legend label (characters) kept in a legend beside the axes."""
WRAP_CHARS = 120
"""Characters per line of a legend below the axes."""
LINE_INCHES = 0.2
"""Figure height added per line of a legend below the axes (inches, at fontsize "small")."""


def add_legend(figure, axes) -> None:
    """The legend of `axes`' labelled artists on `figure` (a constrained-layout Figure)."""
    handles, labels = axes.get_legend_handles_labels()
    if max(map(len, labels), default=0) <= SIDE_LABEL_CHARS:
        axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
        return
    wrapped = [textwrap.fill(label, WRAP_CHARS) for label in labels]
    lines = sum(label.count("\n") + 1 for label in wrapped)
    figure.set_figheight(figure.get_figheight() + LINE_INCHES * lines)
    figure.legend(handles, wrapped, fontsize="small", loc="outside lower center")
