"""Resume policy: which checkpoint a run continues from, and which config changes it accepts.

A resumed run continues with the checkpoint's stored config. Keys typed on the resuming command
line apply on top; of those, `total_timesteps` (extending the run) and the keys of
`IGNORED_ON_RESUME` may always change, any other change needs `resume.allow_config_change=true`.

A resumed start reads its checkpoint once: composing `resume=`, asking whether the run already
finished (`finished_result`) and the run's own `resume_state` share one load (`read_checkpoint`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlrun.config import TrainConfig
from rlrun.config.flat import flatten
from rlrun.run.checkpoint_files import (
    LAST,
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
    run_dir_of,
)
from rlrun.run.launch import TrainResult
from rlrun.run.stopping import same_rules

IGNORED_ON_RESUME = (
    "resume",
    "device",
    "torch_threads",
    "numpy_acting",
    "compile",
    "logger",
    "checkpoint",
    "hparams_search",
    "stop",
    "callbacks",
)
"""Config keys (and sections) that may change when a run is resumed: they do not shape training
(the stopping rules, like `total_timesteps`, only say where it ends)."""
ABSENT = "<absent>"
"""How `config_changes` shows a key one of the two configs lacks."""


def known_part(stored: Any, schema: Any) -> Any:
    """`stored` (a plain config) without the keys a structured `schema` node does not have:
    keys a later rlrun dropped (they cannot shape training any more). Free-form dicts are kept."""
    from omegaconf import DictConfig

    if not isinstance(stored, dict) or not isinstance(schema, DictConfig):
        return stored
    structured = OmegaConf.get_type(schema) not in (dict, None)
    keys = set(schema.keys())
    return {
        key: known_part(
            value, OmegaConf.select(schema, key, throw_on_missing=False) if key in keys else None
        )
        for key, value in stored.items()
        if not structured or key in keys
    }


def _flat_with_whole_keywords(config: dict[str, Any]) -> dict[str, Any]:
    """`flatten(config)` with `env.kwargs` one leaf: a keyword added or dropped is a change."""
    flat = {key: value for key, value in flatten(config).items()
            if not key.startswith("env.kwargs.")}
    if isinstance(config.get("env"), dict):
        flat["env.kwargs"] = config["env"].get("kwargs", {})
    return flat


def config_changes(stored_yaml: str, cfg: TrainConfig) -> list[str]:
    """`key: old -> new` for every config value that differs from the checkpoint's config.

    Keys one of the two lacks (added to rlrun after the checkpoint was written, or dropped
    since) are not changes: they take their defaults, or shape nothing any more.
    """
    old, new = (
        _flat_with_whole_keywords(OmegaConf.to_container(config, resolve=True))
        for config in (OmegaConf.create(stored_yaml), OmegaConf.structured(cfg))
    )
    return [
        f"{key}: {old.get(key, ABSENT)} -> {new.get(key, ABSENT)}"
        for key in sorted(old.keys() | new.keys())
        if key.split(".")[0] not in IGNORED_ON_RESUME
        and key in old
        and key in new
        and old[key] != new[key]
    ]


def refused_changes(changes: list[str]) -> list[str]:
    """The changes that need `resume.allow_config_change=true` (all but extending the budget)."""
    return [change for change in changes if not change.startswith("total_timesteps:")]


_kept: tuple[tuple[str, int, int, int], dict[str, Any]] | None = None
"""The checkpoint last read by `read_checkpoint` (its file's identity, its state), for the next
reader of the same start."""


def read_checkpoint(path: Path, keep: bool = True) -> dict[str, Any]:
    """`load_checkpoint(path)`, loaded once for the readers of one start: while the file is
    unchanged (same inode, size and modification time), the state read last is returned again.

    `keep=False` takes it (the run that restores from it: its tensors may then be trained in
    place), so that a later start loads the file anew.
    """
    global _kept
    try:
        stat = os.stat(path)
        identity = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:
        identity = None  # load_checkpoint says why it cannot be read
    if identity is not None and _kept is not None and _kept[0] == identity:
        state = _kept[1]
    else:
        state = load_checkpoint(path)  # on the CPU: each tracked object moves its state over
    _kept = (identity, state) if keep and identity is not None else None
    return state


@dataclass
class Resumed:
    """The checkpoint a run continues from (`resume_state`)."""

    path: Path
    """Its file."""
    state: dict[str, Any]
    """What it holds (`load_checkpoint`)."""
    changes: list[str]
    """The config changes accepted (`key: old -> new`)."""

    @property
    def step(self) -> int:
        """The global env step it was written at."""
        return int(self.state["global_step"])


def resume_state(
    cfg: TrainConfig, run_dir: Path, overrides: list[str] | None = None
) -> Resumed | None:
    """The checkpoint to resume from, with its state and the accepted config changes; None: a
    fresh run.

    The checkpoint is `resume.path`, else the run dir's own `checkpoints/last.pt`. Raises
    CheckpointError when it belongs to another algorithm or the config changed in a way not
    allowed (see the module docstring); the message names first the changes of the keys typed
    on this command line (`overrides` not among the checkpoint's own).
    """
    own = Path(run_dir) / "checkpoints" / LAST
    if cfg.resume.path is None and not own.is_file():
        return None
    path = resolve_checkpoint(cfg.resume.path) if cfg.resume.path else own
    state = read_checkpoint(path, keep=False)
    check_algo(path, state, cfg.algo.name)
    check_budget(path, state, cfg.total_timesteps)
    changes = config_changes(state["config"], cfg)
    refused = refused_changes(changes)
    if refused and not cfg.resume.allow_config_change:
        typed = [line for line in overrides or [] if line not in (state.get("overrides") or [])]
        raise CheckpointError(_refusal(path, refused, typed))
    return Resumed(path, state, changes)


def finished_result(cfg: TrainConfig, run_dir: Path) -> TrainResult | None:
    """The recorded result when `run_dir` holds a finished run of at least `cfg.total_timesteps`
    with this config.

    A run is finished when its checkpoints/last.pt was written by `Run.finish` after the final
    evaluation (it holds `final_eval_return`) at a step >= `cfg.total_timesteps`, or after a
    stopping rule ended it (`stop_reason`) and `cfg` has the same `stop.*` rules; None otherwise.
    """
    path = Path(run_dir) / "checkpoints" / LAST
    if not path.is_file():
        return None
    state = read_checkpoint(path)
    final, reason = state.get("final_eval_return"), state.get("stop_reason")
    ended = state["global_step"] >= cfg.total_timesteps or (
        reason is not None and same_rules(state["config"], cfg))
    if final is None or not ended or config_changes(state["config"], cfg):
        return None  # unfinished, or a changed config that Run refuses (or accepts) with a message
    return TrainResult(float(final), int(state["global_step"]), Path(run_dir), reason)


SHOWN_CHANGES = 4
"""Most changes a resume refusal lists besides those of the keys typed (count)."""


def _refusal(path: Path, refused: list[str], typed: list[str]) -> str:
    """Why resuming `path` is refused: every `refused` change of a key in `typed` (the overrides
    of this command line; a choice's own id first: `env=X` changes `env.id`), then a few of the
    values that change with them (e.g. the presets of a new env)."""
    typed = [line for line in typed if _key(line).split(".")[0] not in IGNORED_ON_RESUME]

    def covers(line: str, change: str) -> bool:
        key, changed = _key(line), change.partition(":")[0]
        return changed == key or changed.startswith(f"{key}.") or key.startswith(f"{changed}.")

    own = sorted((change for change in refused if any(covers(line, change) for line in typed)),
                 key=lambda change: not change.partition(":")[0].endswith(".id"))
    rest = [change for change in refused if change not in own]
    shown = "; ".join(rest[:SHOWN_CHANGES]) + (
        f"; and {len(rest) - SHOWN_CHANGES} more" if len(rest) > SHOWN_CHANGES else "")
    advice = ("to continue with the checkpoint's values, or add resume.allow_config_change=true "
              "to continue with the new ones")
    if not own:
        return f"{path} was trained with another config ({shown}): drop those overrides {advice}"
    causes = " ".join(line for line in typed if any(covers(line, change) for change in own))
    with_them = f"; with them {len(rest)} more value(s) change ({shown})" if rest else ""
    return (f"{path} was trained with another config: {causes} changes {'; '.join(own)}"
            f"{with_them}: drop {causes} {advice}")


def _key(override: str) -> str:
    """The key of a `key=value` override, without `+`, `++` or `~`."""
    return override.partition("=")[0].lstrip("+~")


def check_budget(path: Path, state: dict[str, Any], total_timesteps: int) -> None:
    """Refuse a `total_timesteps` lowered below the step the checkpoint already reached (a budget
    only extends; the unchanged budget of a finished run is fine)."""
    stored = OmegaConf.create(state["config"]).get("total_timesteps")
    step = state["global_step"]
    if stored is not None and total_timesteps < stored and total_timesteps < step:
        raise CheckpointError(
            f"total_timesteps={total_timesteps:,} is below step {step:,}, which {path} already "
            f"reached: resume without total_timesteps, or give more than {step:,} to extend it"
        )


def check_python_env(path: Path, state: dict[str, Any], fix: str) -> None:
    """Refuse a checkpoint whose env a Python callable made (`rlrun.train(env=<callable>)`) while
    no callable is registered under its env id again (`rlrun.envs.python_env`): the checkpoint
    cannot rebuild that env. `fix` says how to go on, with `{run}` and `{env}` to fill in."""
    from rlrun.envs.python_env import is_registered

    made_by = state.get("python_env")
    if made_by is None or is_registered(OmegaConf.create(state["config"]).env.id):
        return
    fill = {"run": run_dir_of(path), "env": made_by.rpartition(":")[2]}
    raise CheckpointError(
        f"{path} was trained on an env made in Python by {made_by}, which a checkpoint cannot "
        f"rebuild: {fix.format(**fill)}"
    )


def check_algo(path: Path, state: dict[str, Any], algo: str) -> None:
    """Refuse resuming a checkpoint of another algorithm."""
    if state.get("algo") != algo:
        raise CheckpointError(
            f"{path} was written by algo={state.get('algo')}, not algo={algo}: resume it without "
            f"algo= (or with algo={state.get('algo')}), or train algo={algo} in a new run dir"
        )
