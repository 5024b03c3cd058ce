"""Run: the services every algorithm uses, written once.

A thin facade in front of the run's services, each its own object: checkpoints
(`rlrun.run.checkpoints`), evaluations (`rlrun.run.evaluations`), stop signals
(`rlrun.run.signals`), the logger, the thread count, and resume (`rlrun.run.resume`). An algorithm
owns its loop and calls these services; it never builds envs or seeds anything itself, and
writes its own outputs (datasets, samples) only through `output_dir` and `append_text`.

A run writes nothing into its run dir until training starts, when the algorithm, set up, calls
`restore` (or first logs or checkpoints): a run refused while the algorithm sets up (a replay
buffer that does not fit, a checkpoint that does not fit the config) leaves the dir as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlrun.callbacks import CallbackError, make_callbacks
from rlrun.config import ConfigError, TrainConfig
from rlrun.envs.factory import Step, VecEnv, make_vec_env
from rlrun.envs.final_info import FinalInfo
from rlrun.run.checkpoint_files import LAST, SideFile, Stateful
from rlrun.run.checkpoints import RunCheckpoints
from rlrun.run.device import resolve_device
from rlrun.run.eval_episodes import EvalResult
from rlrun.run.evaluations import RunEvaluations
from rlrun.run.launch import EvalReporter, Launch, Policy, PolicyLoader, TrainResult
from rlrun.run.resume import config_changes, finished_result, resume_state
from rlrun.run.seeding import seed_everything, set_deterministic
from rlrun.run.signals import STOP_SIGNALS, RunInterrupted, StopSignals
from rlrun.run.start import panel_rows, write_config_files
from rlrun.run.threads import thread_control
from rlrun.tracking.logger import Logger
from rlrun.training.optim import NonFiniteError
from rlrun.training.stats import EpisodeWindow

__all__ = [  # what callers import from here (some defined in the services' modules)
    "STOP_SIGNALS", "EvalReporter", "Launch", "Policy", "PolicyLoader", "Run", "RunInterrupted", "RunPruned",
    "Scalars", "SideFile", "Stateful", "TrainResult", "config_changes", "finished_result",
    "resolve_device",
]


class Scalars(dict):
    """Named numbers an algorithm adapts while training (e.g. a KL coefficient), checkpointed."""

    def state_dict(self) -> dict[str, float]:
        return dict(self)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.update(state)


class RunPruned(Exception):
    """The search's pruner stopped the run after the evaluation `value` at step `step`; the
    checkpoint of that step is written."""

    def __init__(self, message: str, value: float, step: int) -> None:
        super().__init__(message)
        self.value = value
        self.step = step


class Run:
    """One training run in `run_dir`, fresh or resumed from its checkpoint.

    Raises CheckpointError when the checkpoint to resume belongs to another algorithm or was
    trained with a config this one may not change (`rlrun.run.resume`).
    """

    def __init__(self, cfg: TrainConfig, run_dir: Path, launch: Launch | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.launch = launch or Launch()
        self._resumed = resume_state(cfg, self.run_dir, self.launch.overrides)
        self.callbacks = make_callbacks(cfg.callbacks, self.launch.callbacks)
        """The user's callbacks (`rlrun.callbacks`), made before the RNGs are seeded."""
        self.threads = thread_control(cfg.torch_threads)
        """Torch's CPU thread count, fixed or chosen by timing (`torch_threads=auto`)."""
        set_deterministic(cfg.deterministic)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        state = self._resumed.state if self._resumed else {}
        start_step = self._resumed.step if self._resumed else 0
        self.step = start_step
        """Latest global env step the algorithm reported (through log or maybe_checkpoint)."""
        config_dict = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
        self.sweep: str | None = self.launch.sweep or state.get("sweep")
        """The sweep this run is a job of (kept in checkpoints, so `resume=<job dir>` keeps it)."""
        self.logger = Logger(
            cfg.logger, self.run_dir, cfg.total_timesteps, config_dict,
            start_step=start_step, wandb_id=state.get("wandb_id"), mlflow_id=state.get("mlflow_id"),
            run_name=self.run_dir.name, group=self.sweep, label=self.launch.label,
        )
        self.checkpoints = RunCheckpoints(
            self.run_dir / "checkpoints", cfg.checkpoint.keep, cfg.checkpoint.every_steps,
            self.logger.message, self.logger.record_line,
            written=start_step if self._resumed else None,
            skip_nonfinite=cfg.divergence.on_nan == "skip_update",
        )
        self._final_info = FinalInfo(cfg.logger.info_keys, self.logger.message)
        self.evaluations = RunEvaluations(cfg, self.device, self._final_info,
                                          lambda: self.signals.received, self.launch.trial, state)
        self._episodes = EpisodeWindow(cfg.logger.return_window)
        self._episodes.load_state_dict(state.get("episodes", {}))
        self._train_envs: VecEnv | None = None
        self._start_time = time.perf_counter()
        self._start_step = start_step
        self._budget: str | None = None
        self._closed = False
        self.signals = StopSignals(lambda: f"{self.checkpoints.kept()} in {self.run_dir}")

    # ----- set-up -------------------------------------------------------------------------
    def describe_budget(self, text: str) -> None:
        """What the start panel says of the budget, for an algorithm whose steps are not env steps
        or that ends before `total_timesteps` (called before `restore()`)."""
        self._budget = text

    def _open(self) -> None:
        """Training starts: show the start panel, write the launch's config files and open the log
        files (once)."""
        if self.logger.opened:
            return
        resumed = self._resumed
        rows = panel_rows(self.cfg, self.run_dir, self.launch, self.device, self._budget, resumed)
        self.logger.panel("rlrun: resuming" if resumed else "rlrun: training", rows)
        if resumed is not None:
            self.logger.message(f"Resuming from {resumed.path} at step {resumed.step}")
        write_config_files(self.run_dir, self.launch.config_files)
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
        in these spaces (`Launch.check_spaces`, which the command line runs before this).
        """
        count = self.cfg.env.num_envs if num_envs is None else num_envs
        self._train_envs = make_vec_env(self.cfg.env, count, gamma=gamma, training=True,
                                        final_info=self._final_info)
        self.evaluations.train_envs = self._train_envs
        check_spaces = self.launch.check_spaces
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
        self.checkpoints.track(**objects)

    def _notice(self, text: str) -> None:
        """Show one line to the user (console and train.log)."""
        self.logger.message(text)

    def note_learning_starts(self, learning_starts: int) -> None:
        """Say so when the budget ends before `learning_starts`: such a run never updates. The
        time left is estimated from the speed after it (the random warm-up is faster)."""
        status = self.logger.status
        status.measure_from = max(status.measure_from, learning_starts)
        if learning_starts >= self.cfg.total_timesteps:
            self._notice(f"total_timesteps={self.cfg.total_timesteps} <= algo.learning_starts={learning_starts}: "
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
        if self._resumed is None:
            self._open()
            return 0
        self.checkpoints.restore(self._resumed)
        self._open()
        return self._resumed.step

    # ----- during training ----------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """True once a STOP_SIGNALS signal arrived, the search pruned the run, a stopping rule
        ended it or a callback raised: the loop ends after the current iteration."""
        return (self.signals.received or self.evaluations.pruned is not None
                or self.evaluations.stop_reason is not None or self.callbacks.failure is not None)

    def stop_if_signalled(self, when: str) -> None:
        """Raise RunInterrupted, writing no checkpoint, when a stop signal arrived `when` (a set-up
        phase that has no completed iteration to keep)."""
        self.signals.stop_if_signalled(when)

    def record_episodes(self, step: Step) -> None:
        """Collect finished training episodes for the `rollout/` metrics."""
        if len(step.episode_returns):
            self._episodes.add(step.episode_returns, step.episode_lengths, step.episode_infos)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Log training metrics with rollout statistics and throughput at global step `step`."""
        self._open()
        metrics = dict(metrics)
        self.step = step
        skipped = self.checkpoints.skipped_updates()
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
        self.evaluations.use_evaluator(evaluator)

    def evaluate(self, policy: Policy) -> EvalResult:
        """Evaluate with the eval protocol on separate envs (frozen training normalisation).

        Raises EvaluationInterrupted when a stop signal arrives during the episodes.
        """
        return self.evaluations.evaluate(policy)

    def _evaluate_and_log(self, policy: Policy, step: int, final: bool = False) -> EvalResult | None:
        """Evaluate, log, apply the stopping rules and checkpoint (marking best.pt); None when a
        signal interrupted it (`RunEvaluations.observe`)."""
        self._open()
        evaluated = self.evaluations.observe(policy, step, final)
        if evaluated is None:
            return None
        result = evaluated.result
        if not evaluated.repeated:
            self.logger.log(result.metrics(), step)
            self.callbacks.call("on_evaluation", step, result.metrics())
        self.save_checkpoint(step, best=evaluated.improved)
        if self.evaluations.report(evaluated, final):
            self.logger.message(f"Pruned by the search at step {step} (eval return {result.mean:.2f})")
        return result

    def maybe_evaluate(self, policy: Policy, step: int) -> EvalResult | None:
        """Evaluate (and checkpoint, marking best.pt) when `eval.every_steps` is reached."""
        if not self.evaluations.due(step):
            return None
        with self.threads.excluded():
            return self._evaluate_and_log(policy, step)

    def maybe_checkpoint(self, step: int) -> None:
        """The end of a training iteration (called once per iteration): the thread count's timing
        sees it, and a checkpoint is written when `checkpoint.every_steps` is reached."""
        self.step = step
        self.threads.observe(step)
        if self.checkpoints.due(step):
            with self.threads.excluded():
                self.save_checkpoint(step)

    def save_checkpoint(self, step: int, best: bool = False) -> None:
        """Write last.pt (and a numbered copy, and best.pt if `best`) with everything to resume.

        Raises NonFiniteError, writing nothing, when a tracked network holds a NaN or infinity.
        """
        self._open()
        self.step = step
        about = {
            "algo": self.cfg.algo.name,
            "config": OmegaConf.to_yaml(OmegaConf.structured(self.cfg)),
            "overrides": list(self.launch.overrides),
            "config_dirs": list(self.launch.config_dirs),
            "global_step": int(step),
            **self.evaluations.state_dict(),
            "wandb_id": self.logger.wandb_id,
            "mlflow_id": self.logger.mlflow_id,
            "sweep": self.sweep,
            "episodes": self._episodes.state_dict(),
            **({} if self.launch.python_env is None else {"python_env": self.launch.python_env}),
        }
        path = self.checkpoints.save(step, about, best=best)
        self.callbacks.call("on_checkpoint", step, path)

    def finish(self, policy: Policy, step: int) -> TrainResult:
        """End the run: final evaluation and checkpoint, close loggers.

        Raises RunInterrupted (after checkpointing) when a signal stopped training, RunPruned
        (after checkpointing, without a final evaluation) when the search pruned the run,
        CallbackError (after checkpointing, or after finishing) when a callback raised.
        """
        evaluations = self.evaluations
        try:
            if evaluations.pruned is not None:
                if self.checkpoints.written != step:
                    self.save_checkpoint(step)
                self._call_end(step, "pruned")
                pruned_step, value = evaluations.pruned
                raise RunPruned(f"the search pruned this trial at step {pruned_step} (eval return "
                                f"{value:.2f}); checkpoint saved in {self.run_dir}", value, pruned_step)
            if self.callbacks.failure is not None:
                if self.checkpoints.written != step:
                    self.save_checkpoint(step)
                raise CallbackError(self._callback_failure(
                    f"at step {step}: checkpoint saved in {self.run_dir}; fix it (or leave it out: "
                    f"callbacks=[]) and continue with `rlrun resume={self.run_dir}`"))
            result = (None if self.signals.received
                      else self._evaluate_and_log(policy, step, final=True))
            if result is None:  # stopped by a signal, before or during the final evaluation
                self.save_checkpoint(step)
                self._call_end(step, "interrupted")
                raise self.signals.interrupted(
                    f"at step {step}: checkpoint saved in {self.run_dir}. Continue with "
                    f"`rlrun resume={self.run_dir}` (add total_timesteps=N to extend it)")
            summary = self._final_summary(result, step)
            self.logger.finish(summary, self.checkpoints.directory / LAST)
            self.logger.report_status()
            if evaluations.stop_reason is not None:
                ended = f"Finished early ({evaluations.stop_reason})"
            else:
                rounded = (f" (total_timesteps={self.cfg.total_timesteps:,} rounded up to whole "
                           "iterations)" if step > self.cfg.total_timesteps else "")
                ended = f"Finished at step {step}{rounded}"
            self.logger.message(
                f"{ended}: eval return {result.mean:.2f} ± {result.std:.2f} over "
                f"{len(result.returns)} episode{'s' * (len(result.returns) != 1)}; run dir {self.run_dir}"
            )
            stopped = evaluations.stop_reason is not None
            self._call_end(step, "stopped" if stopped else "finished", summary)
            if self.callbacks.failure is not None:
                raise CallbackError(self._callback_failure(
                    f"after the run finished at step {step}, its results kept in {self.run_dir}"))
            return TrainResult(result.mean, step, self.run_dir, evaluations.stop_reason)
        finally:
            self.close()

    def _call_end(self, step: int, status: str, summary: dict[str, Any] | None = None) -> None:
        """The callbacks' on_end: how the run ended (`status`), and the final evaluation's summary."""
        self.callbacks.call("on_end", step, {
            "status": status, "run_dir": str(self.run_dir),
            "stop_reason": self.evaluations.stop_reason, **(summary or {})})

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
            "best_eval_return": self.evaluations.best_eval_return,
            "stop_reason": self.evaluations.stop_reason,
        }

    def divergence_message(self, error: NonFiniteError) -> str:
        """One line for a run stopped by NonFiniteError: step, what diverged, what was kept, the fix."""
        written = self.checkpoints.written
        kept = (
            f"the last good checkpoint (step {written}) is kept in {self.checkpoints.directory}"
            if written is not None
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
        self.signals.restore()
        if self._train_envs is not None:
            self._train_envs.close()
        self.evaluations.close()
        self.logger.close()
