"""What the start panel says of the group choices that presets fill in.

A group choice typed on the command line (`optimizer=adam`, `network=cnn`) always wins: presets
never set a group's name. They do set numbers inside a group (a learning rate tuned with the
algorithm's own optimizer), which then apply to whatever the user chose; the panel shows each
choice with those numbers, names the preset they come from, and says which of them the choice
does not read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from rlrun.config import NETWORK_SCHEMAS, OPTIMIZER_FIELDS

PANEL_GROUPS = ("optimizer", "network")
"""The groups whose choice and preset values the start panel shows."""


def fields_read(group: str, choice: str) -> set[str] | None:
    """The config fields the `group=choice` option reads; None when unknown (a user's option)."""
    if group == "optimizer":
        return set(OPTIMIZER_FIELDS.get(choice, ())) or None
    schema = NETWORK_SCHEMAS.get(choice)
    return {f.name for f in dataclasses.fields(schema)} - {"name"} if schema else None


def default_choice(conf_dir: Path, group: str, algo: str) -> str | None:
    """The `group` option that `algo=<algo>` gets when none is typed: the algo file's
    `override /<group>...: choice`, else train.yaml's; None when neither file says."""
    for path, prefix in ((conf_dir / "algo" / f"{algo}.yaml", f"override /{group}"),
                         (conf_dir / "train.yaml", group)):
        if not path.is_file():
            continue
        for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []):
            if isinstance(entry, dict):
                for key, value in entry.items():
                    if key == prefix or key.startswith(f"{prefix}@"):
                        return str(value)
    return None


def _preset_values(path: Path, group: str) -> dict[str, object]:
    """The values a preset file (package _global_) sets in `group`."""
    node = OmegaConf.to_container(OmegaConf.load(path)).get(group) or {}
    return dict(node)


def choice_rows(
    choices: Mapping[str, str], presets: list[Path], typed: list[str], conf_dir: Path
) -> list[tuple[str, str]]:
    """Start-panel rows: for each group of PANEL_GROUPS, its choice (with the override that made
    it, when one did), then the values each applied preset file sets in that group; values the
    choice does not read are named apart, and an optimizer typed on the command line that differs
    from the one the presets were tuned with (the algorithm's) is said so.

    `choices`: Hydra's group choices of the run; `presets`: the preset files applied, in order;
    `typed`: the run's overrides (`optimizer=adam`)."""
    rows = []
    for group in PANEL_GROUPS:
        choice = choices.get(group)
        if choice is None:
            continue
        overridden = f"{group}={choice}" in typed
        text = f"{choice} ({group}={choice})" if overridden else choice
        read = fields_read(group, choice)
        for path in presets:
            values = _preset_values(path, group)
            if not values:
                continue
            used = [f"{k}={v}" for k, v in values.items() if read is None or k in read]
            unread = [f"{k}={v}" for k, v in values.items() if read is not None and k not in read]
            text += f"; preset {path.stem} sets {' '.join(used) or 'nothing it reads'}"
            if unread:
                text += f" ({' '.join(unread)} not read by {choice})"
            tuned = default_choice(conf_dir, group, choices.get("algo", "")) if overridden else None
            if group == "optimizer" and tuned not in (None, choice):
                text += f", tuned with {group}={tuned}"
        rows.append((group, text))
    return rows
