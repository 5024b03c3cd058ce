"""Metric logging: the `Logger` (`logger`) in front of the console (`console`) and each sink
(`jsonl_sink`: metrics.jsonl, `tensorboard_sink`, `wandb_sink`, `mlflow_sink`), and the start-up
check of the remote ones (`check`)."""
