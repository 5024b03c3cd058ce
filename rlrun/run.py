"""Run: the services every algorithm uses, written once.

Output dirs, thread count, seeding, device, training and evaluation envs, the metrics
logger, checkpoints (save, keep, resume) and signal handling (Ctrl-C, SIGTERM, and the
SIGUSR1/SIGUSR2 that cluster schedulers send before a time limit or preemption). An algorithm
owns its loop and calls these services; it never builds envs, writes files or seeds anything itself.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from rlrun.checkpoint import (
    FORMAT,
    Checkpointer,
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
    save_atomic,
)
from rlrun.config import ConfigError, TrainConfig
from rlrun.envs.factory import Step, VecEnv, make_vec_env
from rlrun.evaluation import EvalResult, evaluate
from rlrun.logger import Logger
from rlrun.ops.optim import FlatOptimizer, NonFiniteError
from rlrun.threads import thread_control

IGNORED_ON_RESUME = (
    "resume", "device", "torch_threads", "numpy_acting", "compile", "logger", "checkpoint", "hparams_search",
)
"""Config keys (and sections) that may change when a run is resumed: they do not shape training.
A changed `total_timesteps` (extending a run) is accepted and reported; any other change needs
`resume.allow_config_change=true`."""


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class Policy(Protocol):
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor: ...


class Scalars(dict):
    """Named numbers an algorithm adapts while training (e.g. a KL coefficient), checkpointed."""

    def state_dict(self) -> dict[str, float]:
        return dict(self)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.update(state)


class SideFile:
    """Marks a tracked object whose state is too large for the checkpoint file (a replay buffer).

    `run.track(replay=SideFile(buffer))` writes the state to `checkpoints/<name>.pt` beside
    each checkpoint (atomically, before `last.pt`), with the same format marker and
    `weights_only` loading; the checkpoint itself holds only the file name and step. Numbered
    checkpoints and `best.pt` share the one side file, so resuming from them continues with
    the newest side-file state.
    """

    def __init__(self, obj: Stateful) -> None:
        self.obj = obj


@dataclass
class TrainResult:
    final_eval_return: float
    """Mean raw return of the final evaluation."""
    global_step: int
    """Env steps trained."""
    run_dir: Path
    """Where the run's files are."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""Signals that end training after the current iteration with a checkpoint."""


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
    evaluation (it holds `final_eval_return`) at a step >= `cfg.total_timesteps`; None otherwise.
    """
    path = Path(run_dir) / "checkpoints" / "last.pt"
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    final = state.get("final_eval_return")
    if final is None or state["global_step"] < cfg.total_timesteps or config_changes(state["config"], cfg):
        return None  # unfinished, or a changed config that Run refuses (or accepts) with a message
    return TrainResult(float(final), int(state["global_step"]), Path(run_dir))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but CUDA is not available here; use device=cpu or device=auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch generator states as tensors and plain data."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(numpy_state["state"]["pos"]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", state["numpy_key"].numpy().astype(np.uint32), state["numpy_pos"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        items: dict[str, Any] = {}
        for key, value in node.items():
            items.update(_flatten(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: node}


def config_changes(stored_yaml: str, cfg: TrainConfig) -> list[str]:
    """`key: old -> new` for every config value that differs from the checkpoint's config."""
    old = _flatten(OmegaConf.to_container(OmegaConf.create(stored_yaml), resolve=True))
    new = _flatten(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
    absent = "<absent>"
    return [
        f"{key}: {old.get(key, absent)} -> {new.get(key, absent)}"
        for key in sorted(old.keys() | new.keys())
        if key.split(".")[0] not in IGNORED_ON_RESUME and old.get(key, absent) != new.get(key, absent)
    ]


def _non_finite_tensor(state: dict[str, Any]) -> str | None:
    """Name of the first floating-point tensor in `state` holding a NaN or infinity."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


class Run:
    """One training run in `run_dir`, fresh or resumed from its checkpoint."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.threads = thread_control(cfg.torch_threads)
        """Torch's CPU thread count, fixed or chosen by timing (`torch_threads=auto`)."""
        if cfg.deterministic:
            # cuBLAS is repeatable only with a fixed workspace, read when its first handle is made
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if cfg.deterministic != torch.are_deterministic_algorithms_enabled():
            torch.use_deterministic_algorithms(cfg.deterministic)  # its first call imports for ~1.7 s
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", cfg.checkpoint.keep)
        self._resume_state = self._find_resume_state()
        start_step = self._resume_state["global_step"] if self._resume_state else 0
        self._checkpoint_step = start_step if self._resume_state else None
        self.step = start_step
        """Latest global env step the algorithm reported (through log or maybe_checkpoint)."""
        self.best_eval_return: float | None = (
            self._resume_state.get("best_eval_return") if self._resume_state else None
        )
        self.final_eval_return: float | None = None
        config_dict = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
        self.logger = Logger(
            cfg.logger, self.run_dir, cfg.total_timesteps, config_dict,
            start_step=start_step,
            wandb_id=self._resume_state.get("wandb_id") if self._resume_state else None,
            run_name=self.run_dir.name,
        )
        self._tracked: dict[str, Stateful] = {}
        self._train_envs: VecEnv | None = None
        self._eval_envs: VecEnv | None = None
        self._evaluator: Callable[[Policy], EvalResult] | None = None
        self._next_eval = self._next_multiple(start_step, cfg.eval.every_steps)
        self._next_checkpoint = self._next_multiple(start_step, cfg.checkpoint.every_steps)
        self._next_console = self._next_multiple(start_step, cfg.logger.every_steps)
        self._episode_returns: list[float] = []
        self._episode_lengths: list[int] = []
        self._start_time = time.perf_counter()
        self._start_step = start_step
        self._signal: int | None = None
        self._previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        if self._resume_state:
            self.logger.message(f"Resuming from {self._resume_path} at step {start_step}")
            if self._config_changes:
                self.logger.message(f"Resuming with a changed config: {'; '.join(self._config_changes)}")

    # ----- set-up -------------------------------------------------------------------------
    @staticmethod
    def _next_multiple(step: int, every: int) -> int | None:
        return (step // every + 1) * every if every > 0 else None

    def _find_resume_state(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, refused when it belongs to another algorithm or config."""
        own = self.run_dir / "checkpoints" / "last.pt"
        self._config_changes: list[str] = []
        if self.cfg.resume.path is None and not own.is_file():
            return None
        path = resolve_checkpoint(self.cfg.resume.path) if self.cfg.resume.path else own
        self._resume_path = path
        state = load_checkpoint(path)  # on the CPU: each tracked object moves its state to its device
        if state.get("algo") != self.cfg.algo.name:
            raise CheckpointError(
                f"{path} was written by algo={state.get('algo')}, not algo={self.cfg.algo.name}: "
                f"resume it with algo={state.get('algo')}, or train algo={self.cfg.algo.name} in a new run dir"
            )
        self._config_changes = config_changes(state["config"], self.cfg)
        refused = [change for change in self._config_changes if not change.startswith("total_timesteps:")]
        if refused and not self.cfg.resume.allow_config_change:
            shown = "; ".join(refused[:4]) + (" ..." if len(refused) > 4 else "")
            raise CheckpointError(
                f"{path} was trained with another config ({shown}): re-run with the checkpoint's "
                "values, or add resume.allow_config_change=true to continue with the new ones"
            )
        return state

    def make_envs(self, gamma: float = 0.99, num_envs: int | None = None) -> VecEnv:
        """The training envs (seeded from `seed`; reward normalisation discounts with `gamma`).

        `num_envs` overrides `env.num_envs` for algorithms whose env count is set by their own
        config (e.g. one env per CEM candidate).
        """
        count = self.cfg.env.num_envs if num_envs is None else num_envs
        self._train_envs = make_vec_env(self.cfg.env, count, gamma=gamma, training=True)
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
                obj.skip_nonfinite = self.cfg.train.on_nan == "skip_update"

    def restore(self) -> int:
        """Load the resume checkpoint into the tracked objects; returns its global step (0 if fresh)."""
        state = self._resume_state
        if state is None:
            return 0
        missing = set(self._tracked) - set(state["modules"])
        if missing:
            raise CheckpointError(
                f"{self._resume_path} lacks {sorted(missing)}, which this config needs: resume with "
                "the checkpoint's config, or train in a new run dir"
            )
        for name, obj in self._tracked.items():
            try:
                if isinstance(obj, SideFile):
                    obj.obj.load_state_dict(self._load_side_file(state["modules"][name], int(state["global_step"])))
                else:
                    obj.load_state_dict(state["modules"][name])
            except (RuntimeError, KeyError, ValueError, IndexError) as error:
                raise CheckpointError(
                    f"{self._resume_path}: its {name} does not fit this config "
                    f"({str(error).strip().splitlines()[0][:160]}); resume with the checkpoint's "
                    "network and algo settings, or train in a new run dir"
                ) from None
        set_rng_state(state["rng"])
        return int(state["global_step"])

    def _load_side_file(self, entry: dict[str, Any], step: int) -> dict[str, Any]:
        path = self._resume_path.parent / entry["side_file"]
        if not path.is_file():
            raise CheckpointError(
                f"{self._resume_path} needs {path.name} beside it, which is missing; resume from "
                "the checkpoints dir that holds both"
            )
        side = load_checkpoint(path, map_location="cpu")
        if side["global_step"] != step:
            self.logger.message(
                f"{path.name} is from step {side['global_step']}, the checkpoint from step {step}: "
                f"continuing with the state of step {side['global_step']}"
            )
        return side["state"]

    def _save_side_file(self, name: str, obj: Stateful, step: int) -> dict[str, Any]:
        path = self.checkpointer.directory / f"{name}.pt"
        save_atomic({"format": FORMAT, "global_step": int(step), "state": obj.state_dict()}, path)
        self.logger.message(f"Wrote {name} state to {path} ({path.stat().st_size / 2**20:.1f} MB)")
        return {"side_file": path.name, "global_step": int(step)}

    # ----- during training ----------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """True once a STOP_SIGNALS signal arrived: the loop ends after the current iteration."""
        return self._signal is not None

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # a second Ctrl-C stops at once

    def record_episodes(self, step: Step) -> None:
        """Collect finished training episodes for the next `rollout/` metrics."""
        if len(step.episode_returns):
            self._episode_returns.extend(step.episode_returns.tolist())
            self._episode_lengths.extend(step.episode_lengths.tolist())

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Log training metrics with rollout statistics and throughput at global step `step`."""
        metrics = dict(metrics)
        self.step = step
        skipped = sum(obj.skipped_steps for obj in self._tracked.values() if isinstance(obj, FlatOptimizer))
        if skipped:
            metrics["train/skipped_updates"] = float(skipped)
        if self._episode_returns:
            metrics["rollout/ep_return_mean"] = float(np.mean(self._episode_returns))
            metrics["rollout/ep_len_mean"] = float(np.mean(self._episode_lengths))
            metrics["rollout/episodes"] = float(len(self._episode_returns))
            self._episode_returns.clear()
            self._episode_lengths.clear()
        elapsed = time.perf_counter() - self._start_time
        metrics["time/sps"] = (step - self._start_step) / max(elapsed, 1e-9)
        metrics["time/wall"] = elapsed
        metrics["time/torch_threads"] = float(self.threads.threads)
        self.logger.log(metrics, step)
        self.logger.progress(step)

    def use_evaluator(self, evaluator: Callable[[Policy], EvalResult]) -> None:
        """Evaluate with `evaluator(policy)` instead of Gymnasium eval envs, in `maybe_evaluate` and
        `finish` alike (algorithms on an in-process task, e.g. ppo_lm on env=lm)."""
        self._evaluator = evaluator

    def evaluate(self, policy: Policy) -> EvalResult:
        """Evaluate with the eval protocol on separate envs (frozen training normalisation)."""
        if self._evaluator is not None:
            return self._evaluator(policy)
        if self._eval_envs is None:
            obs_normalizer = self._train_envs.obs_normalizer if self._train_envs else None
            self._eval_envs = make_vec_env(
                self.cfg.env, self.cfg.eval.num_envs, training=False, obs_normalizer=obs_normalizer
            )
        return evaluate(
            policy, self._eval_envs, self.cfg.eval.episodes, self.cfg.seed + self.cfg.eval.seed_offset,
            self.device, self.cfg.eval.deterministic,
        )

    def _evaluate_and_log(self, policy: Policy, step: int, final: bool = False) -> EvalResult:
        if isinstance(policy, nn.Module):
            policy.eval()
        result = self.evaluate(policy)
        if isinstance(policy, nn.Module):
            policy.train()
        self.logger.log(result.metrics(), step)
        improved = self.best_eval_return is None or result.mean > self.best_eval_return
        if improved:
            self.best_eval_return = result.mean
        if final:
            self.final_eval_return = result.mean
        self.save_checkpoint(step, best=improved)
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
        self.step = step
        for name, obj in self._tracked.items():
            if isinstance(obj, nn.Module) and (tensor := _non_finite_tensor(obj.state_dict())):
                raise NonFiniteError(f"non-finite parameter {name}.{tensor}")
        state = {
            "format": FORMAT,
            "algo": self.cfg.algo.name,
            "config": OmegaConf.to_yaml(OmegaConf.structured(self.cfg)),
            "global_step": int(step),
            "best_eval_return": self.best_eval_return,
            "final_eval_return": self.final_eval_return,
            "wandb_id": self.logger.wandb_id,
            "modules": {
                name: self._save_side_file(name, obj.obj, step) if isinstance(obj, SideFile) else obj.state_dict()
                for name, obj in self._tracked.items()
            },
            "rng": rng_state(),
        }
        self.checkpointer.save(state, step, best=best)
        self._checkpoint_step = step
        self._next_checkpoint = self._next_multiple(step, self.cfg.checkpoint.every_steps)

    def finish(self, policy: Policy, step: int) -> TrainResult:
        """End the run: final checkpoint and evaluation, close loggers.

        Raises RunInterrupted (after checkpointing) when a signal stopped training.
        """
        try:
            if self._signal is not None:
                self.save_checkpoint(step)
                name = signal.Signals(self._signal).name
                raise RunInterrupted(
                    f"{name} at step {step}: checkpoint saved in {self.run_dir}. Resume by re-running "
                    f"the same command with hydra.run.dir={self.run_dir}, or with resume={self.run_dir}",
                    self._signal,
                )
            result = self._evaluate_and_log(policy, step, final=True)
            self.logger.message(
                f"Finished at step {step}: eval return {result.mean:.2f} ± {result.std:.2f} "
                f"over {len(result.returns)} episodes; run dir {self.run_dir}"
            )
            return TrainResult(result.mean, step, self.run_dir)
        finally:
            self.close()

    def divergence_message(self, error: NonFiniteError) -> str:
        """One line for a run stopped by NonFiniteError: step, what diverged, what was kept, the fix."""
        kept = (
            f"the last good checkpoint (step {self._checkpoint_step}) is kept in {self.checkpointer.directory}"
            if self._checkpoint_step is not None
            else "no checkpoint had been written yet"
        )
        return (
            f"training diverged after step {self.step}: {error}; {kept}. Lower optimizer.lr (or clip "
            "gradients harder), or set train.on_nan=skip_update to skip such updates"
        )

    def close(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        for envs in (self._train_envs, self._eval_envs):
            if envs is not None:
                envs.close()
        self.logger.close()
