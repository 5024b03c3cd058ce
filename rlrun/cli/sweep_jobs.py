"""What a job of a Hydra multirun (`rlrun -m ...`) needs beyond a single run.

- `job_dir_name`: a job's run dir name, made from its overrides (resolver `rlrun_job_dir`, used
  by `hydra.sweep.subdir`), so re-launching a sweep maps every job to the same dir again.
- `assign_gpu`: under a local parallel launcher (joblib, submitit_local) on a machine with several
  GPUs, each job sees one GPU: GPU = job number % GPU count.
- `seed_runs`: an `hparams_search` trial trains once per seed, in `<job dir>/seed_<k>`.
- `sweep_name`: the name a sweep's jobs share in the loggers (their wandb group).
- `job_label`: the prefix of a job's console lines, so that parallel jobs' output can be told
  apart.
- `SweepDir`: a Hydra callback that creates the sweep dir when a multirun starts, before the
  Optuna sweeper opens its study storage (`<sweep dir>/optuna.db`) there, and names its run dirs
  when it ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rlrun.config import TrainConfig

MAX_DIR_NAME = 160
"""Longest run dir name kept whole (bytes; file systems allow 255)."""
_SHELL_SPECIAL = re.compile(r"[^\w.,=+:@%~-]+")
"""What a job dir name replaces by `_`: characters a shell would expand or split a word at."""
LOCAL_PARALLEL_LAUNCHERS = ("joblib", "submitit_local")
"""`hydra/launcher` choices that run several jobs at once on this machine."""


def job_dir_name(override_dirname: str) -> str:
    """A job's run dir name from `hydra.job.override_dirname`, safe as one path component.

    Hydra's `\\:` (env=mymod:MyEnv-v0) becomes a plain `:`, and each run of other characters
    that are not letters, digits or `.,=+:@%~-` one `_`: `/` (env=ALE/Pong-v5), and the brackets,
    braces, quotes and spaces of list and dict values (`env.wrappers=[{_target_:a.B,k:1}]`), which
    a shell would expand, so that the printed path pastes back into a shell as it is. A name longer
    than MAX_DIR_NAME bytes is cut and ends with `-` and 8 hex digits of the SHA-1 of the whole
    name, so it stays unique.
    """
    name = _SHELL_SPECIAL.sub("_", override_dirname.replace("\\:", ":"))
    encoded = name.encode()
    if len(encoded) <= MAX_DIR_NAME:
        return name
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    return encoded[: MAX_DIR_NAME - 9].decode(errors="ignore") + "-" + digest


JOB_LABEL_CHARS = 48
"""Longest override part of a job's console label (characters); a longer one ends in `…`."""


def job_label(num: int, override_dirname: str) -> str:
    """`[job 3 algo=a2c,seed=1]`: the job's number and its run dir name (cut at
    JOB_LABEL_CHARS), which prefix each console line of a job of a sweep."""
    name = job_dir_name(override_dirname)
    if len(name) > JOB_LABEL_CHARS:
        name = name[: JOB_LABEL_CHARS - 1] + "…"
    return f"[job {num} {name}]" if name else f"[job {num}]"


def sweep_name(sweep_dir: str | Path) -> str:
    """The sweep's name: its dir below the nearest `multirun` dir (`2026-11-22/10-00-00` for the
    default `outputs/multirun/<date>/<time>`), else the dir's own name (`hydra.sweep.dir=
    outputs/lr_scan` gives `lr_scan`)."""
    path = Path(sweep_dir)
    for depth, parent in enumerate(path.parents):
        if parent.name == "multirun":
            return "/".join(path.parts[-depth - 1:])
    return path.name


def gpu_for_job(job_num: int, visible: list[str]) -> str | None:
    """The one GPU (an entry of `visible`) job `job_num` should see; None with fewer than two."""
    if len(visible) < 2:
        return None
    return visible[job_num % len(visible)]


def visible_gpus() -> list[str]:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else all (counted without CUDA init)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def assign_gpu(device: str, launcher: str | None, job_num: int) -> str | None:
    """Narrow CUDA_VISIBLE_DEVICES to `gpu_for_job` for a GPU job of a local parallel launcher.

    Must run before CUDA is initialised in this process (it has no effect after, so it then
    leaves things alone). A reused worker process keeps the GPU its first job chose. Returns the
    GPU chosen, or None when nothing changed.
    """
    import torch

    if device not in ("auto", "cuda") or launcher not in LOCAL_PARALLEL_LAUNCHERS:
        return None
    if torch.cuda.is_initialized():
        return None
    gpu = gpu_for_job(job_num, visible_gpus())
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


def seed_runs(
    typed: TrainConfig, cfg: DictConfig, overrides: list[str], job_dir: Path
) -> list[tuple[TrainConfig, DictConfig, list[str], Path]]:
    """The runs of one `hparams_search` trial, one per seed k: (typed config with `seed=k`, its
    config node, the job's overrides with `seed=k`, `<job_dir>/seed_<k>`).

    Each seed run writes the node and overrides as its `.hydra/config.yaml` and
    `.hydra/overrides.yaml`, so that rlrun-report reads it as a run dir with the trial's overrides.
    """
    assert typed.hparams_search is not None
    runs = []
    for seed in typed.hparams_search.seeds:
        seed_overrides = [line for line in overrides if not line.startswith("seed=")]
        seed_overrides.append(f"seed={seed}")
        node = OmegaConf.merge(cfg, {"seed": seed})
        runs.append((dataclasses.replace(typed, seed=seed), node, seed_overrides, job_dir / f"seed_{seed}"))
    return runs


class SweepDir(Callback):
    """Creates `hydra.sweep.dir` as a multirun starts (the Optuna sweeper keeps its study there),
    and prints the absolute path of each run dir in it when the multirun ends: submitit's workers
    print only to their log files, and a path to paste into `rlrun-eval` is then on the screen."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rlrun.results.report import find_run_dirs

        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        run_dirs = find_run_dirs([sweep_dir]) if sweep_dir.is_dir() else []
        print(f"rlrun: sweep done, {len(run_dirs)} run dirs (rlrun-report {sweep_dir} compares "
              "them):")
        for run_dir in run_dirs:
            print(f"  {run_dir}")
