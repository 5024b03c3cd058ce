"""Published learning results (`rlrun/results/reference/scores.csv`) and the random-policy scores
(`rlrun/results/reference/random.csv`): their rows, loaded and matched to an env and algorithm.

Each row is one published figure: env and env version, algorithm, the step it is read at and the
length of the run it comes from (env steps), mean and spread over seeds, what was measured
(`measure_kind`, one of `MEASURE_KINDS`, and in words with the source line that supports it) and
the file it was read from. `rlrun.results.reference_compare` sets rlrun's runs beside them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rlrun.config import ConfigError

SCORES = Path(__file__).resolve().parent / "reference" / "scores.csv"
"""The published figures shipped with rlrun."""
COLUMNS = ("env", "env_version", "algorithm", "steps", "budget", "mean", "spread", "spread_kind",
           "seeds", "measure_kind", "window", "measure", "source", "source_file")
"""The CSV's columns, in order."""
MEASURE_KINDS = {
    "train_window": "mean over seeds of the mean return of the last `window` training episodes",
    "eval_agent_deterministic": "evaluation of one trained agent taking its mean or argmax action",
    "eval_agent_stochastic": "evaluation of one trained agent sampling its actions",
    "eval_seeds_deterministic": "mean over seeds of each seed's deterministic evaluation",
    "eval_seeds_stochastic": "mean over seeds of each seed's stochastic evaluation",
    "max_seed_mean_deterministic": ("max over the evaluations up to `steps` of the mean over "
                                    "seeds of the deterministic evaluation return (best during "
                                    "training)"),
    "max_seed_mean_stochastic": ("max over the evaluations up to `steps` of the mean over seeds "
                                 "of the stochastic evaluation return (best during training)"),
    "auc": ("mean return of all training episodes up to `steps` (an area under the training "
            "curve), mean over seeds"),
}
"""The measures a published figure can be, by `measure_kind`."""
RANDOM_SCORES = Path(__file__).resolve().parent / "reference" / "random.csv"
"""The return of a uniform-random policy per env (written by scripts/random_scores.py)."""
RANDOM_COLUMNS = ("env", "env_version", "mean", "std", "episodes", "source")
"""The random-score CSV's columns, in order."""


@dataclass(frozen=True)
class Reference:
    """One published figure."""

    env: str
    """Env name without version (Hopper, CartPole, Pong); an rllab task's Gymnasium counterpart, or
    its own name where it has none (CartPoleSwingUp)."""
    env_version: str
    """v1 ... v5, or rllab."""
    algorithm: str
    """rlrun's algorithm name."""
    steps: int | None
    """The env step the figure is read at; None when the source does not state it."""
    mean: float
    """Published mean return."""
    spread: float | None
    """Published spread (see `spread_kind`); None if none."""
    spread_kind: str
    """std, stderr, or empty."""
    seeds: int | None
    """Seeds behind the figure (count); None if not stated."""
    measure: str
    """What was measured, in words, with the source lines that say so."""
    source: str
    """Who published it (CleanRL, RL Zoo, Tianshou, the TD3 paper, Duan et al. 2016)."""
    source_file: str
    """The repository file (and commit) it was read from."""
    measure_kind: str
    """One of `MEASURE_KINDS`."""
    window: int | None = None
    """Training episodes averaged by a `train_window` figure (count); None if not stated or not
    one."""
    budget: int | None = None
    """Length of the run the figure comes from (env steps; a learning-rate decay ends there); None
    if not stated."""

    @property
    def policy(self) -> str | None:
        """`deterministic` or `stochastic` for an evaluation measure; None for a training one."""
        ends = ("deterministic", "stochastic")
        return next((end for end in ends if self.measure_kind.endswith(end)), None)

    @property
    def label(self) -> str:
        spread = f" ± {self.spread:g}" if self.spread is not None else ""
        return f"{self.source} {self.mean:g}{spread}"


def _number(text: str, kind: type) -> float | int | None:
    text = text.strip().replace(",", "")
    return kind(float(text)) if text else None


def _csv_rows(path: Path, columns: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(file line number, row) of a CSV, after checking that it has `columns`."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"{path} lacks the columns {', '.join(sorted(missing))}")
        yield from enumerate(reader, start=2)


def _measure_kind(text: str) -> str:
    kind = text.strip()
    if kind not in MEASURE_KINDS:
        raise ValueError(f"measure_kind {kind!r} is not one of {', '.join(MEASURE_KINDS)}")
    return kind


def load_references(path: Path = SCORES) -> list[Reference]:
    """The rows of a reference CSV; ConfigError naming the file and row if one is malformed."""
    if not path.is_file():
        raise ConfigError(f"no reference scores at {path}; pass a CSV with columns {', '.join(COLUMNS)}")
    references = []
    for line, row in _csv_rows(path, COLUMNS):
        try:
            references.append(Reference(
                env=row["env"].strip(), env_version=row["env_version"].strip(),
                algorithm=row["algorithm"].strip(), steps=_number(row["steps"], int),
                mean=float(row["mean"]), spread=_number(row["spread"], float),
                spread_kind=row["spread_kind"].strip(), seeds=_number(row["seeds"], int),
                measure=row["measure"].strip(), source=row["source"].strip(),
                source_file=row["source_file"].strip(),
                measure_kind=_measure_kind(row["measure_kind"]),
                window=_number(row["window"], int), budget=_number(row["budget"], int),
            ))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{path} line {line}: {error}") from None
    return references


@dataclass(frozen=True)
class RandomScore:
    """The mean return of a uniform-random policy on one env."""

    env: str
    """Env name without version (Hopper, CartPole)."""
    env_version: str
    """v0 ... v5."""
    mean: float
    """Mean raw return over the episodes."""
    std: float
    """Standard deviation of the return over the episodes."""
    episodes: int
    """Episodes played (count)."""
    source: str
    """How it was measured."""


def load_random_scores(path: Path = RANDOM_SCORES) -> list[RandomScore]:
    """The rows of a random-score CSV; ConfigError naming the file and row if one is malformed."""
    if not path.is_file():
        raise ConfigError(f"no random scores at {path}; write them with scripts/random_scores.py")
    scores = []
    for line, row in _csv_rows(path, RANDOM_COLUMNS):
        try:
            scores.append(RandomScore(
                env=row["env"].strip(), env_version=row["env_version"].strip(),
                mean=float(row["mean"]), std=float(row["std"]), episodes=int(row["episodes"]),
                source=row["source"].strip(),
            ))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{path} line {line}: {error}") from None
    return scores


def split_env_id(env_id: str) -> tuple[str, str]:
    """`Hopper-v4` -> (`Hopper`, `v4`); `ALE/Pong-v5` -> (`Pong`, `v5`); an id without version -> (id, '')."""
    name = env_id.rsplit("/", 1)[-1]
    match = re.fullmatch(r"(.+)-(v\d+)", name)
    name, version = match.groups() if match else (name, "")
    return name.removesuffix("NoFrameskip"), version


def matching(references: list[Reference], env_id: str, algo: str) -> list[Reference]:
    """The references of this env (any version) and algorithm."""
    name, _ = split_env_id(env_id)
    return [ref for ref in references if ref.env == name and ref.algorithm == algo]


def _same_version_first(rows: list, env_id: str) -> list:
    """The rows of the env's own version when there are any, else all of them."""
    _, version = split_env_id(env_id)
    return [row for row in rows if row.env_version == version] or rows


def random_score(scores: list[RandomScore], env_id: str) -> RandomScore | None:
    """The random score of this env (its own version if measured, else another); None if none."""
    name, _ = split_env_id(env_id)
    found = _same_version_first([score for score in scores if score.env == name], env_id)
    return found[0] if found else None


def best_reference(references: list[Reference], env_id: str) -> Reference | None:
    """The highest published mean of this env over every algorithm, budget and measure (of its own
    version where it has one); None when the env has no published figure."""
    name, _ = split_env_id(env_id)
    found = _same_version_first([ref for ref in references if ref.env == name], env_id)
    return max(found, key=lambda ref: ref.mean) if found else None
