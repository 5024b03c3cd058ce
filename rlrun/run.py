"""Run: the services every algorithm uses, written once.

Output dirs, thread count, seeding, device, training and evaluation envs, the metrics
logger, checkpoints (save, keep, resume) and signal handling (Ctrl-C, SIGTERM, and the
SIGUSR1/SIGUSR2 that cluster schedulers send before a time limit or preemption). An algorithm
owns its loop and calls these services; it never builds envs or seeds anything itself, and
writes its own outputs (datasets, samples) only through `output_dir` and `append_text`.

A run writes nothing into its run dir until training starts, when the algorithm, set up, calls
`restore` (or first logs or checkpoints): a run refused while the algorithm sets up (a replay
buffer that does not fit, a checkpoint that does not fit the config) leaves the dir as it was.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import OmegaConf
from torch import nn

from rlrun.callbacks import CallbackError, make_callbacks
from rlrun.checkpoint import (
    FORMAT,
    LAST,
    Checkpointer,
    SideFile,
    Stateful,
    load_checkpoint,
    load_tracked,
    non_finite_tensor,
    tracked_states,
)
from rlrun.config import ConfigError, TrainConfig
from rlrun.envs.factory import Step, VecEnv, make_vec_env
from rlrun.envs.final_info import FinalInfo
from rlrun.evaluation import EvalResult, EvaluationInterrupted, evaluate
from rlrun.logger import Logger
from rlrun.ops.optim import FlatOptimizer, NonFiniteError
from rlrun.ops.stats import EpisodeWindow
from rlrun.resume import config_changes, resume_state
from rlrun.seeding import rng_state, seed_everything, set_deterministic, set_rng_state
from rlrun.stopping import StopRules, same_rules
from rlrun.threads import thread_control


class Policy(Protocol):
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor: ...


class Scalars(dict):
    """Named numbers an algorithm adapts while training (e.g. a KL coefficient), checkpointed."""

    def state_dict(self) -> dict[str, float]:
        return dict(self)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.update(state)


class EvalReporter(Protocol):
    """Where a run's evaluations also go (a search trial: `rlrun.search.trial.TrialReporter`)."""

    def report(self, value: float, step: int, may_prune: bool) -> bool:
        """Take the eval return `value` of env step `step`; True: stop the run here (only when
        `may_prune`)."""


PolicyLoader = Callable[[str, torch.device], Any]
"""Loads the acting policy of an rlrun checkpoint (`rlrun.policy_io.load_policy`)."""


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
    """Name of the Hydra multirun this run is a job of (`rlrun.sweep.sweep_name`); None alone."""
    trial: EvalReporter | None = None
    """The search trial the evaluations are reported to (a job of rlrun's Optuna sweeper)."""
    python_env: str | None = None
    """`<module>:<name>` of the callable that made the env (`rlrun.train(env=<callable>)`),
    kept in checkpoints (a checkpoint cannot rebuild such an env); None: the config makes it."""
    user_configs: list[str] = field(default_factory=list)
    """The files of the user's config dirs composed for the other groups (env, network, ...), each
    saying which shipped file it replaces (`rlrun.config_dirs.UsedFile`)."""
    config_dirs: list[str] = field(default_factory=list)
    """The user's config search path entries (`file://DIR`; stored in checkpoints, so that
    `resume=` finds the run's files again)."""
    callbacks: list[Any] = field(default_factory=list)
    """Callback objects made in Python, called after those of the config's `callbacks`."""
    choices: list[tuple[str, str]] = field(default_factory=list)
    """Start-panel rows: the optimizer and network choices with the preset values set in them
    (`rlrun.choices.choice_rows`)."""
    label: str = ""
    """Prefix of each console line (`rlrun.sweep.job_label` for a job of a sweep); '' alone."""
    load_policy: PolicyLoader | None = None
    """Loads the policy of an rlrun checkpoint (`rlrun.policy_io.load_policy`: path, device), such
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""Signals that end training after the current iteration with a checkpoint."""


class RunPruned(Exception):
    """The search's pruner stopped the run after the evaluation `value` at step `step`; the
    checkpoint of that step is written."""

    def __init__(self, message: str, value: float, step: int) -> None:
        super().__init__(message)
        self.value = value
        self.step = step


class RunInterrupted(Exception):
    """Training stopped on signal `signum` after writing a checkpoint; exit code 128 + signum."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def pass_on(self) -> None:
        """Re-deliver SIGUSR1/SIGUSR2 to the handler installed before Run's, if there was one.

        Under submitit that handler requeues the job, which then resumes from the checkpoint.
        """
        handler = signal.getsignal(self.signum)
        if self.signum in (signal.SIGUSR1, signal.SIGUSR2) and callable(handler):
            signal.raise_signal(self.signum)


def finished_result(cfg: TrainConfig, run_dir: Path) -> TrainResult | None:
    """The recorded result when `run_dir` holds a finished run of at least `cfg.total_timesteps`
    with this config.

    A run is finished when its checkpoints/last.pt was written by `Run.finish` after the final
    evaluation (it holds `final_eval_return`) at a step >= `cfg.total_timesteps`, or after a
    stopping rule ended it (`stop_reason`) and `cfg` has the same `stop.*` rules; None otherwise.
    """
    path = Path(run_dir) / "checkpoints" / "last.pt"
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    final, reason = state.get("final_eval_return"), state.get("stop_reason")
    ended = state["global_step"] >= cfg.total_timesteps or (
        reason is not None and same_rules(state["config"], cfg))
    if final is None or not ended or config_changes(state["config"], cfg):
        return None  # unfinished, or a changed config that Run refuses (or accepts) with a message
    return TrainResult(float(final), int(state["global_step"]), Path(run_dir), reason)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but CUDA is not available here; use device=cpu or device=auto")
    return device


class Run:
    """One training run in `run_dir`, fresh or resumed from its checkpoint.

    Raises CheckpointError when the checkpoint to resume belongs to another algorithm or was
    trained with a config this one may not change (`rlrun.resume`).
    """

    def __init__(self, cfg: TrainConfig, run_dir: Path, launch: Launch | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.launch = launch or Launch()
        resumed = resume_state(cfg, self.run_dir, self.launch.overrides)
        self._resume_path, self._resume_state, self._config_changes = resumed or (None, None, [])
        self.callbacks = make_callbacks(cfg.callbacks, self.launch.callbacks)
        """The user's callbacks (`rlrun.callbacks`), made before the RNGs are seeded."""
        self.threads = thread_control(cfg.torch_threads)
        """Torch's CPU thread count, fixed or chosen by timing (`torch_threads=auto`)."""
        set_deterministic(cfg.deterministic)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", cfg.checkpoint.keep)
        state = self._resume_state or {}
        start_step = int(state.get("global_step", 0))
        self._checkpoint_step = start_step if self._resume_state else None
        self.step = start_step
        """Latest global env step the algorithm reported (through log or maybe_checkpoint)."""
        self.best_eval_return: float | None = state.get("best_eval_return")
        self.final_eval_return: float | None = None
        self.stop_rules = StopRules(cfg.stop)
        self.stop_rules.load_state_dict(state.get("stop", {}))
        self.stop_reason: str | None = None
        """Why a stopping rule ends training, once one did (`TrainResult.stop_reason`)."""
        config_dict = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
        self.sweep: str | None = self.launch.sweep or state.get("sweep")
        """The sweep this run is a job of (kept in checkpoints, so `resume=<job dir>` keeps it)."""
        self.logger = Logger(
            cfg.logger, self.run_dir, cfg.total_timesteps, config_dict,
            start_step=start_step, wandb_id=state.get("wandb_id"), mlflow_id=state.get("mlflow_id"),
            run_name=self.run_dir.name, group=self.sweep, label=self.launch.label,
        )
        self._tracked: dict[str, Stateful] = {}
        self._train_envs: VecEnv | None = None
        self._eval_envs: VecEnv | None = None
        self._evaluator: Callable[[Policy], EvalResult] | None = None
        self._last_eval: tuple[int, EvalResult] | None = None
        self._next_eval = self._next_multiple(start_step, cfg.eval.every_steps)
        self._next_checkpoint = self._next_multiple(start_step, cfg.checkpoint.every_steps)
        self._episodes = EpisodeWindow(cfg.logger.return_window)
        self._final_info = FinalInfo(cfg.logger.info_keys, self.logger.message)
        self._episodes.load_state_dict(state.get("episodes", {}))
        self._start_time = time.perf_counter()
        self._start_step = start_step
        self._signal: int | None = None
        self._pruned: tuple[int, float] | None = None
        self._closed = False
        # Python lets only the main thread install handlers: a run in another thread has none
        in_main_thread = threading.current_thread() is threading.main_thread()
        self._previous_handlers = (
            {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS} if in_main_thread else {}
        )
        self._budget: str | None = None
        self._side_files_shown: set[str] = set()

    # ----- set-up -------------------------------------------------------------------------
    @staticmethod
    def _next_multiple(step: int, every: int) -> int | None:
        return (step // every + 1) * every if every > 0 else None

    def describe_budget(self, text: str) -> None:
        """What the start panel says of the budget, for an algorithm whose steps are not env steps
        or that ends before `total_timesteps` (called before `restore()`)."""
        self._budget = text

    def _start_panel(self) -> None:
        """What this run is and where its files go, once the run is accepted (a refusal during
        set-up prints its one line alone)."""
        cfg = self.cfg
        preset = " + ".join(self.launch.presets) or "none"
        threads = f"torch_threads={cfg.torch_threads}"
        loggers = []
        if cfg.logger.jsonl:
            loggers.append("metrics.jsonl")
        if cfg.logger.tensorboard:
            loggers.append(f"tensorboard {self.run_dir / 'tb'}")
        if cfg.logger.wandb:
            loggers.append(f"wandb {self.run_dir / 'wandb'} (project {cfg.logger.wandb_project})")
        if cfg.logger.mlflow:
            from rlrun.mlflow_log import store_uri

            loggers.append(f"mlflow {store_uri(cfg.logger, self.run_dir)} "
                           f"(experiment {cfg.logger.mlflow_experiment})")
        rows = [
            ("run dir", str(self.run_dir)),
            ("algo", cfg.algo.name),
            ("env", f"{cfg.env.id} ({cfg.env.family}, {cfg.env.num_envs} env{'s' * (cfg.env.num_envs > 1)})"),
            ("preset", preset),
            *([("your configs", ", ".join(self.launch.user_configs))] if self.launch.user_configs else []),
            *self.launch.choices,
            ("budget", f"{self._budget or f'{cfg.total_timesteps:,} env steps'}, seed {cfg.seed}"),
            ("device", f"{self.device}, {threads}"),
            ("loggers", ", ".join(["console", *loggers]) + f", train.log in {self.run_dir}"),
        ]
        if self._resume_state is not None:
            rows.append(("resuming", f"{self._resume_path} at step {self._start_step:,}"))
            if self._config_changes:
                rows.append(("changed", "; ".join(self._config_changes)))
        title = "rlrun: resuming" if self._resume_state is not None else "rlrun: training"
        self.logger.panel(title, rows)
        if self._resume_state is not None:
            self.logger.message(f"Resuming from {self._resume_path} at step {self._start_step}")

    def _open(self) -> None:
        """Training starts: write the launch's config files and open the log files (once)."""
        if self.logger.opened:
            return
        self._start_panel()
        for relative, text in self.launch.config_files.items():
            path = self.run_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        self.logger.open()
        if self.callbacks.callbacks:  # (the config as a DictConfig costs 25 ms)
            self.callbacks.call("on_start", self.run_dir, OmegaConf.structured(self.cfg))
        if self.callbacks.failure is not None:  # nothing trained yet: fail at once
            raise CallbackError(self._callback_failure("before training started; nothing changed"))

    def output_dir(self) -> Path:
        """The run dir, for an algorithm's own outputs (datasets, samples); only after `restore()`."""
        if not self.logger.opened:
            raise RuntimeError("an algorithm writes into its run dir only once restore() has accepted the run")
        return self.run_dir

    def append_text(self, name: str, text: str) -> None:
        """Append `text` and a newline to the file `name` in the run dir (after `restore()`)."""
        with open(self.output_dir() / name, "a") as file:
            file.write(text + "\n")

    def make_envs(self, gamma: float = 0.99, num_envs: int | None = None) -> VecEnv:
        """The training envs (seeded from `seed`; reward normalisation discounts with `gamma`).

        `num_envs` overrides `env.num_envs` for algorithms whose env count is set by their own
        config (e.g. one env per CEM candidate). Raises ConfigError when the algorithm cannot act
        in these spaces (its `AlgoSpec.check_spaces`, which the command line runs before this).
        """
        from rlrun.registry import algorithms

        count = self.cfg.env.num_envs if num_envs is None else num_envs
        self._train_envs = make_vec_env(self.cfg.env, count, gamma=gamma, training=True,
                                        final_info=self._final_info)
        check_spaces = algorithms()[self.cfg.algo.name].check_spaces
        if check_spaces is not None:
            try:
                check_spaces(self._train_envs.single_observation_space,
                             self._train_envs.single_action_space, self.cfg.env.id)
            except ConfigError:
                self._train_envs.close()
                raise
        self._train_envs.action_space.seed(self.cfg.seed)
        self._train_envs.notify = self.logger.message
        return self._train_envs

    @property
    def env_seed(self) -> int:
        """Seed for the first reset of the training envs (shifted on resume for fresh episodes)."""
        return self.cfg.seed + self._start_step

    def track(self, **objects: Stateful | SideFile) -> None:
        """Register objects whose state_dict goes into every checkpoint under these names.

        Wrap an object in `SideFile` to write its state to `checkpoints/<name>.pt` instead.
        """
        self._tracked.update(objects)
        for name, obj in objects.items():
            if isinstance(obj, FlatOptimizer):
                obj.name = name
                obj.skip_nonfinite = self.cfg.divergence.on_nan == "skip_update"

    def notice(self, text: str) -> None:
        """Show one line to the user (console and train.log)."""
        self.logger.message(text)

    def note_learning_starts(self, learning_starts: int) -> None:
        """Say so when the budget ends before `learning_starts`: such a run never updates. The
        time left is estimated from the speed after it (the random warm-up is faster)."""
        status = self.logger.status
        status.measure_from = max(status.measure_from, learning_starts)
        if learning_starts >= self.cfg.total_timesteps:
            self.notice(f"total_timesteps={self.cfg.total_timesteps} <= algo.learning_starts={learning_starts}: "
                        "this run only explores and never updates; raise total_timesteps or lower "
                        "algo.learning_starts")

    def record_line(self, text: str) -> None:
        """Write one line to train.log only (what the command line prints on stderr)."""
        self.logger.record_line(text)

    def restore(self) -> int:
        """Load the resume checkpoint into the tracked objects; returns its global step (0 if fresh).

        Called once the algorithm is set up, just before its loop: training starts, and the run
        writes its files from here on.
        """
        state = self._resume_state
        if state is None:
            self._open()
            return 0
        load_tracked(self._tracked, state, self._resume_path, self.logger.message)
        set_rng_state(state["rng"])
        self._open()
        return int(state["global_step"])

    # ----- during training ----------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """True once a STOP_SIGNALS signal arrived, the search pruned the run, a stopping rule
        ended it or a callback raised: the loop ends after the current iteration."""
        return (self._signal is not None or self._pruned is not None or self.stop_reason is not None
                or self.callbacks.failure is not None)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_second_signal)

    def stop_if_signalled(self, when: str) -> None:
        """Raise RunInterrupted, writing no checkpoint, when a stop signal arrived `when` (a set-up
        phase that has no completed iteration to keep)."""
        if self._signal is not None:
            raise RunInterrupted(
                f"{signal.Signals(self._signal).name} {when}: no iteration had completed, so nothing "
                "was kept; re-running the command starts again", self._signal,
            )

    def _on_second_signal(self, signum: int, frame: Any) -> None:
        """A second signal stops at once, without a traceback; the last checkpoint stays intact."""
        kept = (f"the checkpoint of step {self._checkpoint_step} is kept"
                if self._checkpoint_step is not None else "no checkpoint had been written")
        print(f"rlrun: second {signal.Signals(signum).name}: stopped at once; {kept} in {self.run_dir}",
              file=sys.stderr)
        raise SystemExit(128 + signum)

    def record_episodes(self, step: Step) -> None:
        """Collect finished training episodes for the `rollout/` metrics."""
        if len(step.episode_returns):
            self._episodes.add(step.episode_returns, step.episode_lengths, step.episode_infos)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Log training metrics with rollout statistics and throughput at global step `step`."""
        self._open()
        metrics = dict(metrics)
        self.step = step
        skipped = sum(obj.skipped_steps for obj in self._tracked.values() if isinstance(obj, FlatOptimizer))
        if skipped:
            metrics["train/skipped_updates"] = float(skipped)
        metrics.update(self._episodes.metrics())
        elapsed = time.perf_counter() - self._start_time
        metrics["time/sps"] = (step - self._start_step) / max(elapsed, 1e-9)
        metrics["time/wall"] = elapsed
        metrics["time/torch_threads"] = float(self.threads.threads)
        self.logger.log(metrics, step)
        self.logger.progress(step)
        self.callbacks.call("on_log", step, metrics)

    def use_evaluator(self, evaluator: Callable[[Policy], EvalResult]) -> None:
        """Evaluate with `evaluator(policy)` instead of Gymnasium eval envs, in `maybe_evaluate` and
        `finish` alike (algorithms on an in-process task, e.g. ppo_lm on env=lm)."""
        self._evaluator = evaluator

    def evaluate(self, policy: Policy) -> EvalResult:
        """Evaluate with the eval protocol on separate envs (frozen training normalisation).

        Raises EvaluationInterrupted when a stop signal arrives during the episodes.
        """
        if self._evaluator is not None:
            return self._evaluator(policy)
        if self._eval_envs is None:
            obs_normalizer = self._train_envs.obs_normalizer if self._train_envs else None
            self._eval_envs = make_vec_env(
                self.cfg.env, self.cfg.eval.num_envs, training=False, obs_normalizer=obs_normalizer,
                max_episode_steps=self.cfg.eval.max_episode_steps, final_info=self._final_info,
            )
        return evaluate(
            policy, self._eval_envs, self.cfg.eval.episodes, self.cfg.seed + self.cfg.eval.seed_offset,
            self.device, self.cfg.eval.deterministic, should_stop=lambda: self._signal is not None,
        )

    def _evaluate_and_log(self, policy: Policy, step: int, final: bool = False) -> EvalResult | None:
        """Evaluate, log, apply the stopping rules and checkpoint (marking best.pt); None when a
        signal interrupted it.

        The final evaluation reuses an evaluation of the same step instead of repeating it (the
        one a stopping rule ended training at).
        """
        self._open()
        repeated = self._last_eval is not None and self._last_eval[0] == step
        if repeated:
            result = self._last_eval[1]
            improved = False
        else:
            if isinstance(policy, nn.Module):
                policy.eval()
            try:
                result = self.evaluate(policy)
            except EvaluationInterrupted:
                return None
            finally:
                if isinstance(policy, nn.Module):
                    policy.train()
            self._last_eval = (step, result)
            self.logger.log(result.metrics(), step)
            self.callbacks.call("on_evaluation", step, result.metrics())
            if not final:
                self.stop_reason = self.stop_rules.observe(result.mean, self.best_eval_return, step)
            improved = self.best_eval_return is None or result.mean > self.best_eval_return
            if improved:
                self.best_eval_return = result.mean
        if final:
            self.final_eval_return = result.mean
        self.save_checkpoint(step, best=improved)
        trial = None if repeated else self.launch.trial
        last = final or self.stop_reason is not None  # the trial's value: no pruning
        if trial is not None and trial.report(result.mean, step, may_prune=not last):
            self._pruned = (step, result.mean)
            self.logger.message(f"Pruned by the search at step {step} (eval return {result.mean:.2f})")
        return result

    def maybe_evaluate(self, policy: Policy, step: int) -> EvalResult | None:
        """Evaluate (and checkpoint, marking best.pt) when `eval.every_steps` is reached."""
        if self._next_eval is None or step < self._next_eval:
            return None
        self._next_eval = self._next_multiple(step, self.cfg.eval.every_steps)
        with self.threads.excluded():
            return self._evaluate_and_log(policy, step)

    def maybe_checkpoint(self, step: int) -> None:
        """Checkpoint when `checkpoint.every_steps` is reached; called once per training iteration."""
        self.step = step
        self.threads.observe(step)
        if step >= self._next_checkpoint:
            with self.threads.excluded():
                self.save_checkpoint(step)

    def save_checkpoint(self, step: int, best: bool = False) -> None:
        """Write last.pt (and a numbered copy, and best.pt if `best`) with everything to resume.

        Raises NonFiniteError, writing nothing, when a tracked network holds a NaN or infinity.
        """
        self._open()
        self.step = step
        for name, obj in self._tracked.items():
            if isinstance(obj, nn.Module) and (tensor := non_finite_tensor(obj.state_dict())):
                raise NonFiniteError(f"non-finite parameter {name}.{tensor}")
        state = {
            "format": FORMAT,
            "algo": self.cfg.algo.name,
            "config": OmegaConf.to_yaml(OmegaConf.structured(self.cfg)),
            "overrides": list(self.launch.overrides),
            "config_dirs": list(self.launch.config_dirs),
            "global_step": int(step),
            "best_eval_return": self.best_eval_return,
            "final_eval_return": self.final_eval_return,
            "stop_reason": self.stop_reason,
            "stop": self.stop_rules.state_dict(),
            "wandb_id": self.logger.wandb_id,
            "mlflow_id": self.logger.mlflow_id,
            "sweep": self.sweep,
            "episodes": self._episodes.state_dict(),
            "modules": tracked_states(self._tracked, self.checkpointer.directory, step,
                                      self._side_file_notice),
            "rng": rng_state(),
        }
        if self.launch.python_env is not None:
            state["python_env"] = self.launch.python_env
        path = self.checkpointer.save(state, step, best=best)
        self._checkpoint_step = step
        self._next_checkpoint = self._next_multiple(step, self.cfg.checkpoint.every_steps)
        self.callbacks.call("on_checkpoint", step, path)

    def _side_file_notice(self, text: str) -> None:
        """`Wrote <name> state to ...`: on the console the first time, in train.log every time."""
        name = text.split(" state ")[0]
        if name in self._side_files_shown:
            self.logger.record_line(text)
        else:
            self._side_files_shown.add(name)
            self.logger.message(text)

    def finish(self, policy: Policy, step: int) -> TrainResult:
        """End the run: final evaluation and checkpoint, close loggers.

        Raises RunInterrupted (after checkpointing) when a signal stopped training, RunPruned
        (after checkpointing, without a final evaluation) when the search pruned the run,
        CallbackError (after checkpointing, or after finishing) when a callback raised.
        """
        try:
            if self._pruned is not None:
                if self._checkpoint_step != step:
                    self.save_checkpoint(step)
                self._call_end(step, "pruned")
                pruned_step, value = self._pruned
                raise RunPruned(f"the search pruned this trial at step {pruned_step} (eval return "
                                f"{value:.2f}); checkpoint saved in {self.run_dir}", value, pruned_step)
            if self.callbacks.failure is not None:
                if self._checkpoint_step != step:
                    self.save_checkpoint(step)
                raise CallbackError(self._callback_failure(
                    f"at step {step}: checkpoint saved in {self.run_dir}; fix it (or leave it out: "
                    f"callbacks=[]) and continue with `rlrun resume={self.run_dir}`"))
            result = None if self._signal is not None else self._evaluate_and_log(policy, step, final=True)
            if result is None:  # stopped by a signal, before or during the final evaluation
                self.save_checkpoint(step)
                self._call_end(step, "interrupted")
                name = signal.Signals(self._signal).name
                raise RunInterrupted(
                    f"{name} at step {step}: checkpoint saved in {self.run_dir}. Continue with "
                    f"`rlrun resume={self.run_dir}` (add total_timesteps=N to extend it)",
                    self._signal,
                )
            summary = self._final_summary(result, step)
            self.logger.finish(summary, self.checkpointer.directory / LAST)
            self.logger.report_status()
            if self.stop_reason is not None:
                ended = f"Finished early ({self.stop_reason})"
            else:
                rounded = (f" (total_timesteps={self.cfg.total_timesteps:,} rounded up to whole "
                           "iterations)" if step > self.cfg.total_timesteps else "")
                ended = f"Finished at step {step}{rounded}"
            self.logger.message(
                f"{ended}: eval return {result.mean:.2f} ± {result.std:.2f} over "
                f"{len(result.returns)} episode{'s' * (len(result.returns) != 1)}; run dir {self.run_dir}"
            )
            self._call_end(step, "stopped" if self.stop_reason is not None else "finished", summary)
            if self.callbacks.failure is not None:
                raise CallbackError(self._callback_failure(
                    f"after the run finished at step {step}, its results kept in {self.run_dir}"))
            return TrainResult(result.mean, step, self.run_dir, self.stop_reason)
        finally:
            self.close()

    def _call_end(self, step: int, status: str, summary: dict[str, Any] | None = None) -> None:
        """The callbacks' on_end: how the run ended (`status`), and the final evaluation's summary."""
        self.callbacks.call("on_end", step, {"status": status, "run_dir": str(self.run_dir),
                                             "stop_reason": self.stop_reason, **(summary or {})})

    def _callback_failure(self, what: str) -> str:
        """One line for a callback that raised (`what`: when, and what was kept); its traceback
        goes to train.log."""
        self.record_line(self.callbacks.failure_trace or "")
        return f"{self.callbacks.failure} {what}; its traceback is in {self.run_dir / 'train.log'}"

    def _final_summary(self, result: EvalResult, step: int) -> dict[str, Any]:
        """The final evaluation as plain data: its metrics, per-episode returns, the best return."""
        return {
            "global_step": int(step),
            **result.metrics(),
            "episodes": len(result.returns),
            "returns": result.returns.tolist(),
            "best_eval_return": self.best_eval_return,
            "stop_reason": self.stop_reason,
        }

    def divergence_message(self, error: NonFiniteError) -> str:
        """One line for a run stopped by NonFiniteError: step, what diverged, what was kept, the fix."""
        kept = (
            f"the last good checkpoint (step {self._checkpoint_step}) is kept in {self.checkpointer.directory}"
            if self._checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        return (
            f"training diverged after step {self.step}: {error}; {kept}. Lower optimizer.lr (or clip "
            "gradients harder), or set divergence.on_nan=skip_update to skip such updates"
        )

    def close(self) -> None:
        """Restore the signal handlers, close the envs and the loggers; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        for envs in (self._train_envs, self._eval_envs):
            if envs is not None:
                envs.close()
        self.logger.close()
