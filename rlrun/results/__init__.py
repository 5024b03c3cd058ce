"""What `rlrun-report` makes of finished runs: reading and grouping them (`runs`), tables and
report.md (`tables`, `report`), learning curves (`curves`, `plot_legend`), rliable statistics
(`statistics`), aggregation across envs (`aggregate`, `score_normalisation`) and the published
figures they are compared with (`references`, `reference_compare`, CSVs in `reference/`)."""
