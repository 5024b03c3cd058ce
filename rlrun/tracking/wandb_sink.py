"""The Weights & Biases back-end of `rlrun.tracking.logger`: one wandb run per rlrun run, resumed by its id."""

from __future__ import annotations

from pathlib import Path

from rlrun.config import LoggerConfig


class WandbSink:
    """A Weights & Biases run under run_dir/wandb, resumed when its id is given."""

    name = "wandb"

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, config: dict, run_id: str | None, run_name: str,
        group: str | None,
    ) -> None:
        import wandb

        self._run = wandb.init(
            project=cfg.wandb_project,
            entity=cfg.wandb_entity,
            dir=str(run_dir),
            config=config,
            id=run_id,  # None: wandb generates one (wandb.util.generate_id is gone in 0.31)
            resume="allow",
            name=cfg.wandb_name or run_name or None,
            group=cfg.wandb_group or group,
            tags=list(cfg.wandb_tags),
            notes=cfg.wandb_notes,
        )
        self.id: str = self._run.id

    def log(self, metrics: dict[str, float], step: int, elapsed: float) -> None:
        self._run.log(metrics, step=step)

    def close(self) -> None:
        self._run.finish()
