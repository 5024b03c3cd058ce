"""rlrun's Optuna sweeper for Hydra (`hydra/sweeper=rlrun_optuna`), found by Hydra's plugin scan."""
