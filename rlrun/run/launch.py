"""What a run starts from and ends with: how it was launched (`Launch`) and its result
(`TrainResult`), plain data that the command line, the Python API and the run services share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import gymnasium as gym
    import torch

PolicyLoader = Callable[[str, "torch.device"], Any]
"""Loads the acting policy of an rlrun checkpoint (`rlrun.export.rebuild.load_policy`)."""


class Policy(Protocol):
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor: ...


class EvalReporter(Protocol):
    """Where a run's evaluations also go (a search trial: `rlrun.search.trial.TrialReporter`)."""

    def report(self, value: float, step: int, may_prune: bool) -> bool:
        """Take the eval return `value` of env step `step`; True: stop the run here (only when
        `may_prune`)."""


@dataclass
class Launch:
    """How a run was started, kept with it once it is accepted."""

    overrides: list[str] = field(default_factory=list)
    """The command-line overrides (stored in checkpoints, so `resume=` can recompose the run)."""
    config_files: dict[str, str] = field(default_factory=dict)
    """Files (path in the run dir -> text, e.g. `.hydra/config.yaml`) written when training starts."""
    presets: list[str] = field(default_factory=list)
    """The preset files applied, in order (`preset/<algo>_<family>.yaml`, then
    `preset/env/<algo>_<env id>.yaml`, then the experiment's), by path; a user's says which
    shipped file it replaces."""
    sweep: str | None = None
    """Name of the Hydra multirun this run is a job of (`rlrun.cli.sweep_jobs.sweep_name`); None alone."""
    trial: EvalReporter | None = None
    """The search trial the evaluations are reported to (a job of rlrun's Optuna sweeper)."""
    python_env: str | None = None
    """`<module>:<name>` of the callable that made the env (`rlrun.train(env=<callable>)`),
    kept in checkpoints (a checkpoint cannot rebuild such an env); None: the config makes it."""
    user_configs: list[str] = field(default_factory=list)
    """The files of the user's config dirs composed for the other groups (env, network, ...), each
    saying which shipped file it replaces (`rlrun.cli.config_dirs.UsedFile`)."""
    config_dirs: list[str] = field(default_factory=list)
    """The user's config search path entries (`file://DIR`; stored in checkpoints, so that
    `resume=` finds the run's files again)."""
    callbacks: list[Any] = field(default_factory=list)
    """Callback objects made in Python, called after those of the config's `callbacks`."""
    choices: list[tuple[str, str]] = field(default_factory=list)
    """Start-panel rows: the optimizer and network choices with the preset values set in them
    (`rlrun.cli.choices.choice_rows`)."""
    label: str = ""
    """Prefix of each console line (`rlrun.cli.sweep_jobs.job_label` for a job of a sweep); '' alone."""
    check_spaces: Callable[[gym.Space, gym.Space, str], None] | None = None
    """The algorithm's `AlgoSpec.check_spaces`, which `Run.make_envs` runs on the training envs'
    spaces (the caller that looked the algorithm up passes it); None: no check."""
    load_policy: PolicyLoader | None = None
    """Loads the policy of an rlrun checkpoint (`rlrun.export.rebuild.load_policy`: path, device), such
    as an imitation expert; given by the launcher, which sits above the algorithms."""


@dataclass
class TrainResult:
    final_eval_return: float
    """Mean raw return of the final evaluation."""
    global_step: int
    """Env steps trained."""
    run_dir: Path
    """Where the run's files are."""
    stop_reason: str | None = None
    """Why a stopping rule ended training (`stop.*`), e.g. `stopped at step 6144: eval return
    480.20 reached stop.eval_return=475`; None when the budget (or the algorithm's own schedule)
    ended it."""
