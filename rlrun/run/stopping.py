"""Stopping rules (`stop.*`): end training before its budget, on the run's evaluations.

- `stop.eval_return=<value>`: the first evaluation whose mean return reaches the value ends it.
- `stop.patience=<n>`: n evaluations in a row without a new best mean return end it; a new best
  is a mean above the best so far by more than `stop.min_delta` (default 0: any rise).

The evaluation that ends training is the run's final one (it is not run again); its checkpoint
holds the reason (`stop_reason`), so that `resume=` of the run says it is finished unless a
`stop.*` key or `total_timesteps` changes.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from rlrun.config import StopConfig, TrainConfig


class StopRules:
    """The `stop.*` rules over a run's evaluations; its count of evaluations without a new best
    goes into checkpoints (`state_dict`), so a resumed run keeps counting."""

    def __init__(self, cfg: StopConfig) -> None:
        self.cfg = cfg
        self.evals_without_best = 0
        """Evaluations in a row whose mean return was no new best (count)."""

    def observe(self, value: float, best: float | None, step: int) -> str | None:
        """Take the mean return `value` of the evaluation at env step `step` (`best`: the best mean
        before it); the reason to stop there, or None."""
        if best is None or value > best + self.cfg.min_delta:
            self.evals_without_best = 0
        else:
            self.evals_without_best += 1
        target, patience = self.cfg.eval_return, self.cfg.patience
        if target is not None and value >= target:
            return f"stopped at step {step}: eval return {value:.2f} reached stop.eval_return={target:g}"
        if patience is not None and self.evals_without_best >= patience:
            margin = f" + stop.min_delta={self.cfg.min_delta:g}" if self.cfg.min_delta else ""
            return (f"stopped at step {step}: eval return {value:.2f}, no new best over {best:.2f}"
                    f"{margin} in stop.patience={patience} evaluations")
        return None

    def state_dict(self) -> dict[str, int]:
        return {"evals_without_best": self.evals_without_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evals_without_best = int(state.get("evals_without_best", 0))


def same_rules(stored_yaml: str, cfg: TrainConfig) -> bool:
    """Whether `cfg` has the `stop.*` rules of the stored config (a checkpoint's)."""
    rules = OmegaConf.create(stored_yaml).get("stop")
    return rules is not None and (
        OmegaConf.to_container(rules) == OmegaConf.to_container(OmegaConf.structured(cfg.stop))
    )
