"""The runs of a report (`rlrun.results.report`): the run dirs under the given paths, each one's numbers
from its metrics.jsonl and `.hydra/` files (`RunRecord`), and their groups by env, algorithm and
the overrides that differ (`Group`, with its summary of the final returns).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rlrun.config import ConfigError
from rlrun.results.statistics import Summary, summary

NOT_GROUPING = ("seed", "resume", "device", "torch_threads", "logger", "checkpoint", "bench")
"""Override keys (and key prefixes before a dot or slash) that never make a group; a suite's
`bench/<suite>` case names the algo and env, which group anyway."""


@dataclass
class RunRecord:
    """The numbers of one run dir."""

    path: Path
    """The run dir."""
    algo: str
    """Algorithm name (config `algo.name`)."""
    env: str
    """Gymnasium id (config `env.id`)."""
    seed: int
    """Config `seed`."""
    overrides: dict[str, str]
    """Command-line overrides (`key=value` of .hydra/overrides.yaml)."""
    config: dict
    """The composed config (.hydra/config.yaml): the values of the grouping keys."""
    eval_steps: np.ndarray
    """Env steps of the evaluations (increasing)."""
    eval_returns: np.ndarray
    """`eval/return_mean` at those steps (raw return)."""
    steps: int
    """Largest env step in metrics.jsonl."""
    wall: float
    """Wall time at the last metrics event, summed over resumed segments (s)."""
    sps: float
    """Last `time/sps` (env steps per second of the last training segment); nan if none."""
    train_steps: np.ndarray
    """Env steps at which `rollout/ep_return_mean` was logged (increasing)."""
    train_returns: np.ndarray
    """`rollout/ep_return_mean` at those steps (raw return of the last training episodes)."""
    final_infos: dict[str, float] = field(default_factory=dict)
    """{info key of `logger.info_keys`: its `eval/<key>` mean in the last evaluation}, for the keys
    that evaluation logged."""

    @property
    def final_return(self) -> float:
        """The last `eval/return_mean`."""
        return float(self.eval_returns[-1])

    @property
    def train_return(self) -> float:
        """The last `rollout/ep_return_mean`; nan if none."""
        return float(self.train_returns[-1]) if len(self.train_returns) else math.nan

    def value(self, key: str) -> str:
        """The value of `key` in this run: the composed config's, or the override of a group choice."""
        found = OmegaConf.select(OmegaConf.create(self.config), key, default=None)
        if found is not None and not OmegaConf.is_config(found):
            return str(found)
        return self.overrides.get(key, "default")


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run dirs at or under `paths`: dirs that hold metrics.jsonl and .hydra/{config,overrides}.yaml."""
    found: set[Path] = set()
    for path in paths:
        if not Path(path).is_dir():
            raise ConfigError(f"{path} is not a directory; pass run dirs or dirs that hold them")
        for metrics in Path(path).rglob("metrics.jsonl"):
            run_dir = metrics.parent
            if all((run_dir / ".hydra" / name).is_file() for name in ("config.yaml", "overrides.yaml")):
                found.add(run_dir.resolve())
    return sorted(found)


def parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """`key=value` override strings as a dict (`+`, `++` and `~` prefixes dropped)."""
    parsed = {}
    for line in lines:
        key, equals, value = str(line).partition("=")
        parsed[key.lstrip("+~")] = value if equals else "<deleted>"
    return parsed


def read_run(run_dir: Path) -> RunRecord | None:
    """The numbers of one run dir; None when its metrics.jsonl has no evaluation yet."""
    config = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=False)
    overrides = parse_overrides(OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")))
    evals: dict[int, float] = {}
    trains: dict[int, float] = {}
    eval_infos: dict[int, dict[str, float]] = {}
    info_keys = (config.get("logger") or {}).get("info_keys") or []
    steps, wall, sps = 0, 0.0, math.nan
    with (run_dir / "metrics.jsonl").open() as lines:
        for line in lines:
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash mid-write
            steps = max(steps, step)
            wall = float(record.get("time", wall))
            sps = float(record.get("time/sps", sps))
            for key, series in (("eval/return_mean", evals), ("rollout/ep_return_mean", trains)):
                if key in record:
                    series[step] = float(record[key])  # the later of two at one step wins
            if "eval/return_mean" in record:
                eval_infos[step] = {key: float(record[f"eval/{key}"]) for key in info_keys
                                    if f"eval/{key}" in record}
    if not evals:
        return None
    eval_steps, train_steps = np.array(sorted(evals)), np.array(sorted(trains), dtype=int)
    return RunRecord(
        path=run_dir, algo=str(config["algo"]["name"]), env=str(config["env"]["id"]),
        seed=int(config.get("seed", 0)), overrides=overrides, config=config, eval_steps=eval_steps,
        eval_returns=np.array([evals[s] for s in eval_steps]), steps=steps, wall=wall, sps=sps,
        train_steps=train_steps,
        train_returns=np.array([trains[s] for s in train_steps], dtype=float),
        final_infos=eval_infos[int(eval_steps[-1])],
    )


def grouping_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys whose value differs across runs (besides algo and env, which always group)."""
    keys = sorted(set().union(*(run.overrides for run in runs)) - {"algo", "env"})
    keys = [key for key in keys
            if re.split(r"[./]", key)[0] not in NOT_GROUPING and not key.startswith("hydra")]
    return [key for key in keys if len({run.value(key) for run in runs}) > 1]


@dataclass
class Group:
    """The runs of one (env, algo, varying overrides) and their summary."""

    env: str
    """Gymnasium id."""
    algo: str
    """Algorithm name."""
    setting: tuple[tuple[str, str], ...]
    """(key, value) of each grouping override."""
    runs: list[RunRecord]
    """The replicates (one per seed)."""
    mean: float
    """Mean final return over runs."""
    final: Summary
    """`rlrun.results.statistics.summary` of the final returns: IQM and CI, or mean and range below 5 runs."""
    final_infos: dict[str, float] = field(default_factory=dict)
    """{info key: mean over the runs that logged it of their final `eval/<key>`}."""

    @property
    def label(self) -> str:
        return " ".join([self.algo, *(f"{key}={value}" for key, value in self.setting)])

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]


def summarize(runs: list[RunRecord], keys: list[str], resamples: int, seed: int) -> list[Group]:
    """One Group per (env, algo, values of `keys`), sorted by env then label."""
    buckets: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        setting = tuple((key, run.value(key)) for key in keys)
        buckets.setdefault((run.env, run.algo, setting), []).append(run)
    groups = []
    for (env, algo, setting), members in sorted(buckets.items()):
        finals = [run.final_return for run in members]
        infos = {key: float(np.mean([run.final_infos[key] for run in members
                                     if key in run.final_infos]))
                 for key in info_keys(members)}
        groups.append(Group(env, algo, setting, members, float(np.mean(finals)),
                            summary(finals, resamples, seed), infos))
    return groups


def info_keys(runs: list[RunRecord]) -> list[str]:
    """The info keys whose final `eval/<key>` one of `runs` logged, in order of appearance."""
    return list(dict.fromkeys(key for run in runs for key in run.final_infos))
