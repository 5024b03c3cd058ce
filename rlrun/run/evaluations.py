"""A run's evaluations: the eval envs (or an algorithm's own evaluator), when one is due, the best
return, the stopping rules (`stop.*`) and the search trial they are reported to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rlrun.config import TrainConfig
from rlrun.envs.factory import VecEnv, make_vec_env
from rlrun.envs.final_info import FinalInfo
from rlrun.run.checkpoints import Every
from rlrun.run.eval_episodes import EvalResult, EvaluationInterrupted, evaluate
from rlrun.run.launch import EvalReporter, Policy
from rlrun.run.stopping import StopRules


@dataclass
class Evaluated:
    """One evaluation of the run (`RunEvaluations.observe`)."""

    result: EvalResult
    step: int
    """The env step it was taken at."""
    improved: bool
    """Its mean return is a new best (best.pt marks its checkpoint)."""
    repeated: bool
    """It is the evaluation of the same step taken before (the final one reuses the evaluation a
    stopping rule ended training at), not a new one."""


class RunEvaluations:
    """The evaluations of one run with config `cfg` on `device`.

    `resumed` is the checkpoint state a resumed run starts from (its best return, the stopping
    rules' count); `interrupted()` says when a stop signal arrived (an evaluation then ends at
    once); `final_info` reports the eval envs' final-info values.
    """

    def __init__(
        self, cfg: TrainConfig, device: torch.device, final_info: FinalInfo,
        interrupted: Callable[[], bool], trial: EvalReporter | None = None,
        resumed: dict[str, Any] | None = None,
    ) -> None:
        state = resumed or {}
        self.cfg = cfg
        self.device = device
        self.trial = trial
        self.best_eval_return: float | None = state.get("best_eval_return")
        self.final_eval_return: float | None = None
        self.stop_rules = StopRules(cfg.stop)
        self.stop_rules.load_state_dict(state.get("stop", {}))
        self.stop_reason: str | None = None
        """Why a stopping rule ends training, once one did (`TrainResult.stop_reason`)."""
        self.pruned: tuple[int, float] | None = None
        """(step, eval return) of the evaluation after which the search pruned the run."""
        self.schedule = Every(cfg.eval.every_steps, int(state.get("global_step", 0)))
        self.train_envs: VecEnv | None = None
        """The training envs, whose observation normalisation the eval envs use, frozen."""
        self._final_info = final_info
        self._interrupted = interrupted
        self._envs: VecEnv | None = None
        self._evaluator: Callable[[Policy], EvalResult] | None = None
        self._last: Evaluated | None = None

    def use_evaluator(self, evaluator: Callable[[Policy], EvalResult]) -> None:
        """Evaluate with `evaluator(policy)` instead of Gymnasium eval envs."""
        self._evaluator = evaluator

    def evaluate(self, policy: Policy) -> EvalResult:
        """Evaluate with the eval protocol on separate envs (frozen training normalisation).

        Raises EvaluationInterrupted when a stop signal arrives during the episodes.
        """
        if self._evaluator is not None:
            return self._evaluator(policy)
        if self._envs is None:
            obs_normalizer = self.train_envs.obs_normalizer if self.train_envs else None
            self._envs = make_vec_env(
                self.cfg.env, self.cfg.eval.num_envs, training=False, obs_normalizer=obs_normalizer,
                max_episode_steps=self.cfg.eval.max_episode_steps, final_info=self._final_info,
            )
        return evaluate(
            policy, self._envs, self.cfg.eval.episodes, self.cfg.seed + self.cfg.eval.seed_offset,
            self.device, self.cfg.eval.deterministic, should_stop=self._interrupted,
        )

    def due(self, step: int) -> bool:
        """Whether `eval.every_steps` is reached at `step` (then due next a period later)."""
        if not self.schedule.due(step):
            return False
        self.schedule.passed(step)
        return True

    def observe(self, policy: Policy, step: int, final: bool = False) -> Evaluated | None:
        """Evaluate `policy` at `step` (in eval mode), keeping the best return; a non-final one
        goes through the stopping rules. None when a stop signal interrupted it.

        The final evaluation reuses an evaluation of the same step instead of repeating it.
        """
        if self._last is not None and self._last.step == step:
            evaluated = Evaluated(self._last.result, step, improved=False, repeated=True)
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
            if not final:
                self.stop_reason = self.stop_rules.observe(result.mean, self.best_eval_return, step)
            improved = self.best_eval_return is None or result.mean > self.best_eval_return
            if improved:
                self.best_eval_return = result.mean
            evaluated = self._last = Evaluated(result, step, improved, repeated=False)
        if final:
            self.final_eval_return = evaluated.result.mean
        return evaluated

    def report(self, evaluated: Evaluated, final: bool) -> bool:
        """Report a new evaluation to the search trial; True when the trial prunes the run here (the
        final evaluation, and one a stopping rule ended training at, are the trial's value: never
        pruned)."""
        if self.trial is None or evaluated.repeated:
            return False
        last = final or self.stop_reason is not None
        pruned = self.trial.report(evaluated.result.mean, evaluated.step, may_prune=not last)
        if pruned:
            self.pruned = (evaluated.step, evaluated.result.mean)
        return pruned

    def state_dict(self) -> dict[str, Any]:
        """What checkpoints keep of the evaluations, in the checkpoint's key order."""
        return {
            "best_eval_return": self.best_eval_return,
            "final_eval_return": self.final_eval_return,
            "stop_reason": self.stop_reason,
            "stop": self.stop_rules.state_dict(),
        }

    def close(self) -> None:
        """Close the eval envs."""
        if self._envs is not None:
            self._envs.close()
