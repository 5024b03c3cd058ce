"""The command line: the entry points (`rlrun`: `train_command`, `rlrun-eval`: `eval_command`,
`rlrun-report`: `report_command`), the arguments as users type them (`arguments`), composing and
validating a config before anything runs (`compose`, `compose_messages`, `validate`,
`config_dirs`, `choices`), and what a job of a sweep needs (`sweep_jobs`, `sweep_check`, `job`).
"""
