"""Run: the services every algorithm uses, written once.

Output dirs, thread count, seeding, device, training and evaluation envs, the metrics
logger, checkpoints (save, keep, resume) and Ctrl-C/SIGTERM handling. An algorithm owns its
loop and calls these services; it never builds envs, writes files or seeds anything itself.
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from rlrun.checkpoint import FORMAT, CheckpointError, Checkpointer, load_checkpoint, resolve_checkpoint
from rlrun.config import ConfigError, TrainConfig
from rlrun.envs.factory import Step, VecEnv, make_vec_env
from rlrun.evaluation import EvalResult, evaluate
from rlrun.logger import Logger


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


@dataclass
class TrainResult:
    final_eval_return: float
    """Mean raw return of the final evaluation."""
    global_step: int
    """Env steps trained."""
    run_dir: Path
    """Where the run's files are."""


class RunInterrupted(Exception):
    """Training stopped on a signal after writing a checkpoint; carries the exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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


class Run:
    """One training run in `run_dir`, fresh or resumed from its checkpoint."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        torch.set_num_threads(cfg.torch_threads)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", cfg.checkpoint.keep)
        self._resume_state = self._find_resume_state()
        start_step = self._resume_state["global_step"] if self._resume_state else 0
        self.best_eval_return: float | None = (
            self._resume_state.get("best_eval_return") if self._resume_state else None
        )
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
        self._next_eval = self._next_multiple(start_step, cfg.eval.every_steps)
        self._next_checkpoint = self._next_multiple(start_step, cfg.checkpoint.every_steps)
        self._next_console = self._next_multiple(start_step, cfg.logger.every_steps)
        self._episode_returns: list[float] = []
        self._episode_lengths: list[int] = []
        self._start_time = time.perf_counter()
        self._start_step = start_step
        self._signal: int | None = None
        self._previous_handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        if self._resume_state:
            self.logger.message(f"Resuming from {self._resume_path} at step {start_step}")

    # ----- set-up -------------------------------------------------------------------------
    @staticmethod
    def _next_multiple(step: int, every: int) -> int | None:
        return (step // every + 1) * every if every > 0 else None

    def _find_resume_state(self) -> dict[str, Any] | None:
        own = self.run_dir / "checkpoints" / "last.pt"
        if self.cfg.resume is None and not own.is_file():
            return None
        self._resume_path = resolve_checkpoint(self.cfg.resume) if self.cfg.resume else own
        return load_checkpoint(self._resume_path, map_location=self.device)

    def make_envs(self, gamma: float = 0.99) -> VecEnv:
        """The training envs (seeded from `seed`; reward normalisation discounts with `gamma`)."""
        self._train_envs = make_vec_env(self.cfg.env, self.cfg.env.num_envs, gamma=gamma, training=True)
        self._train_envs.envs.action_space.seed(self.cfg.seed)
        return self._train_envs

    @property
    def env_seed(self) -> int:
        """Seed for the first reset of the training envs (shifted on resume for fresh episodes)."""
        return self.cfg.seed + self._start_step

    def track(self, **objects: Stateful) -> None:
        """Register objects whose state_dict goes into every checkpoint under these names."""
        self._tracked.update(objects)

    def restore(self) -> int:
        """Load the resume checkpoint into the tracked objects; returns its global step (0 if fresh)."""
        state = self._resume_state
        if state is None:
            return 0
        missing = set(self._tracked) - set(state["modules"])
        if missing:
            raise CheckpointError(
                f"{self._resume_path} lacks {sorted(missing)}: it was written by another algorithm "
                f"({state.get('algo')}); resume it with algo={state.get('algo')}"
            )
        for name, obj in self._tracked.items():
            obj.load_state_dict(state["modules"][name])
        set_rng_state(state["rng"])
        return int(state["global_step"])

    # ----- during training ----------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        """True once SIGINT or SIGTERM arrived: the loop ends after the current iteration."""
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
        if self._episode_returns:
            metrics["rollout/ep_return_mean"] = float(np.mean(self._episode_returns))
            metrics["rollout/ep_len_mean"] = float(np.mean(self._episode_lengths))
            metrics["rollout/episodes"] = float(len(self._episode_returns))
            self._episode_returns.clear()
            self._episode_lengths.clear()
        elapsed = time.perf_counter() - self._start_time
        metrics["time/sps"] = (step - self._start_step) / max(elapsed, 1e-9)
        metrics["time/wall"] = elapsed
        self.logger.log(metrics, step)
        self.logger.progress(step)

    def evaluate(self, policy: Policy) -> EvalResult:
        """Evaluate with the eval protocol on separate envs (frozen training normalisation)."""
        if self._eval_envs is None:
            obs_normalizer = self._train_envs.obs_normalizer if self._train_envs else None
            self._eval_envs = make_vec_env(
                self.cfg.env, self.cfg.eval.num_envs, training=False, obs_normalizer=obs_normalizer
            )
        return evaluate(
            policy, self._eval_envs, self.cfg.eval.episodes, self.cfg.seed + self.cfg.eval.seed_offset,
            self.device, self.cfg.eval.deterministic,
        )

    def _evaluate_and_log(self, policy: Policy, step: int) -> EvalResult:
        if isinstance(policy, nn.Module):
            policy.eval()
        result = self.evaluate(policy)
        if isinstance(policy, nn.Module):
            policy.train()
        self.logger.log(result.metrics(), step)
        improved = self.best_eval_return is None or result.mean > self.best_eval_return
        if improved:
            self.best_eval_return = result.mean
        self.save_checkpoint(step, best=improved)
        return result

    def maybe_evaluate(self, policy: Policy, step: int) -> EvalResult | None:
        """Evaluate (and checkpoint, marking best.pt) when `eval.every_steps` is reached."""
        if self._next_eval is None or step < self._next_eval:
            return None
        self._next_eval = self._next_multiple(step, self.cfg.eval.every_steps)
        return self._evaluate_and_log(policy, step)

    def maybe_checkpoint(self, step: int) -> None:
        """Checkpoint when `checkpoint.every_steps` is reached."""
        if step >= self._next_checkpoint:
            self.save_checkpoint(step)

    def save_checkpoint(self, step: int, best: bool = False) -> None:
        """Write last.pt (and a numbered copy, and best.pt if `best`) with everything to resume."""
        state = {
            "format": FORMAT,
            "algo": self.cfg.algo.name,
            "config": OmegaConf.to_yaml(OmegaConf.structured(self.cfg)),
            "global_step": int(step),
            "best_eval_return": self.best_eval_return,
            "wandb_id": self.logger.wandb_id,
            "modules": {name: obj.state_dict() for name, obj in self._tracked.items()},
            "rng": rng_state(),
        }
        self.checkpointer.save(state, step, best=best)
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
                    128 + self._signal,
                )
            result = self._evaluate_and_log(policy, step)
            self.logger.message(
                f"Finished at step {step}: eval return {result.mean:.2f} ± {result.std:.2f} "
                f"over {len(result.returns)} episodes; run dir {self.run_dir}"
            )
            return TrainResult(result.mean, step, self.run_dir)
        finally:
            self.close()

    def close(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        for envs in (self._train_envs, self._eval_envs):
            if envs is not None:
                envs.close()
        self.logger.close()
