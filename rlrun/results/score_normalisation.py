"""Normalised scores, so that returns of different envs can be aggregated.

A final return becomes (return - low) / (high - low), in the manner of human-normalised Atari
scores: 0 is the low anchor, 1 the high one. Per env:

- low: the mean return of a uniform-random policy (`rlrun/results/reference/random.csv`, written by
  `scripts/random_scores.py`); without one, the worst final return among the report's runs;
- high: the highest published mean for the env in the reference CSV (every algorithm, budget
  and measure; the env's own version where it has one); without one, or when it is not above
  the low anchor, the best final return among the report's runs.

An env whose anchors coincide (every run scored the same and no random or published score sets
them apart) is not normalised and stays out of the aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlrun.results.references import RandomScore, Reference, best_reference, random_score


@dataclass(frozen=True)
class Normalisation:
    """How the returns of one env are normalised."""

    env: str
    """Gymnasium id."""
    low: float
    """Return mapped to 0."""
    high: float
    """Return mapped to 1."""
    low_source: str
    """Where `low` comes from, in words."""
    high_source: str
    """Where `high` comes from, in words."""

    def __call__(self, returns: np.ndarray | float) -> np.ndarray:
        """The normalised returns."""
        return (np.asarray(returns, dtype=float) - self.low) / (self.high - self.low)

    @property
    def kind(self) -> str:
        """The normalisation in two words: `random-reference`, `random-best observed`, ..."""
        low = "random" if self.low_source.startswith("random") else "worst observed"
        high = "reference" if self.high_source.startswith("published") else "best observed"
        return f"{low} → {high}"


def normalisation(
    env: str, finals: np.ndarray, randoms: list[RandomScore], references: list[Reference]
) -> Normalisation | None:
    """The normalisation of `env`, whose runs ended at the returns `finals`; None when its anchors
    coincide."""
    random = random_score(randoms, env)
    if random is not None:
        low = random.mean
        low_source = (f"random policy {random.mean:g} ({random.env}-{random.env_version}, "
                      f"{random.episodes} episodes)")
    else:
        low, low_source = float(np.min(finals)), f"worst observed {np.min(finals):g}"
    best = best_reference(references, env)
    if best is not None and best.mean > low:
        high = best.mean
        high_source = (f"published {best.mean:g} ({best.source}, {best.algorithm}, "
                       f"{best.env}-{best.env_version})")
    else:
        high = float(np.max(finals))
        unusable = "" if best is None else f"; published best {best.mean:g} is not above the low anchor"
        high_source = f"best observed {high:g}{unusable}"
    if high <= low:
        return None
    return Normalisation(env, low, high, low_source, high_source)
