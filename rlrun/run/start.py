"""What a run shows and writes when training starts: the start panel and the launch's config
files (`.hydra/`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rlrun.config import TrainConfig
from rlrun.run.launch import Launch
from rlrun.run.resume import Resumed


def panel_rows(
    cfg: TrainConfig, run_dir: Path, launch: Launch, device: torch.device, budget: str | None,
    resumed: Resumed | None,
) -> list[tuple[str, str]]:
    """The start panel: what this run is (algo, env, presets, budget, device) and where its files
    go; `budget` replaces the env-step budget's text, `resumed` adds where it continues from."""
    loggers = []
    if cfg.logger.jsonl:
        loggers.append("metrics.jsonl")
    if cfg.logger.tensorboard:
        loggers.append(f"tensorboard {run_dir / 'tb'}")
    if cfg.logger.wandb:
        loggers.append(f"wandb {run_dir / 'wandb'} (project {cfg.logger.wandb_project})")
    if cfg.logger.mlflow:
        from rlrun.tracking.mlflow_sink import store_uri

        loggers.append(f"mlflow {store_uri(cfg.logger, run_dir)} "
                       f"(experiment {cfg.logger.mlflow_experiment})")
    rows = [
        ("run dir", str(run_dir)),
        ("algo", cfg.algo.name),
        ("env", f"{cfg.env.id} ({cfg.env.family}, {cfg.env.num_envs} env{'s' * (cfg.env.num_envs > 1)})"),
        ("preset", " + ".join(launch.presets) or "none"),
        *([("your configs", ", ".join(launch.user_configs))] if launch.user_configs else []),
        *launch.choices,
        ("budget", f"{budget or f'{cfg.total_timesteps:,} env steps'}, seed {cfg.seed}"),
        ("device", f"{device}, torch_threads={cfg.torch_threads}"),
        ("loggers", ", ".join(["console", *loggers]) + f", train.log in {run_dir}"),
    ]
    if resumed is not None:
        rows.append(("resuming", f"{resumed.path} at step {resumed.step:,}"))
        if resumed.changes:
            rows.append(("changed", "; ".join(resumed.changes)))
    return rows


def write_config_files(run_dir: Path, files: dict[str, str]) -> None:
    """Write each file (path in `run_dir` -> text) atomically."""
    for relative, text in files.items():
        path = run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
