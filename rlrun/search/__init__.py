"""rlrun's Optuna search (`hydra/sweeper=rlrun_optuna`, selected by `hparams_search=<algo>_optuna`).

- `space`: the `params` syntax (choice, interval, tag(log, ...), range) as Optuna distributions.
- `study`: storages (sqlite, journal file, database URL), samplers, pruners, settings checks.
- `sweeper`: asks trials, hands them to Hydra's launcher, tells their results.
- `trial`: in each job (any process or machine), reports evaluations to its trial through the
  storage and ends the run when the pruner says so.
- `report`: the study section of `rlrun-report`.
"""

RESULTS_FILE = "optimization_results.yaml"
"""Written in the sweep dir by the sweeper: the best trial, the study's name and its storage."""
